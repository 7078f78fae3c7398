-- One row per materialized asset partition: the version of what it wrote and of what it read.
CREATE TABLE IF NOT EXISTS materializations (
    asset_key      VARCHAR NOT NULL,
    partition_key  VARCHAR NOT NULL,   -- '' for unpartitioned assets
    run_id         VARCHAR NOT NULL,
    data_version   VARCHAR NOT NULL,   -- content hash of the rows written
    input_versions JSON,               -- {input: version} (files, upstream tables, profile)
    row_count      BIGINT,
    written_at     TIMESTAMP DEFAULT current_timestamp
);
