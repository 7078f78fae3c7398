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

-- Versions of the input files behind each source (content hashes, as the observations report).
CREATE TABLE IF NOT EXISTS source_files (
    source         VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    version        VARCHAR NOT NULL,   -- the source's version (hash over its files)
    file_version   VARCHAR NOT NULL,   -- this file's own hash
    run_id         VARCHAR NOT NULL,
    asset_key      VARCHAR NOT NULL,
    partition_key  VARCHAR NOT NULL,
    input_versions JSON
);
