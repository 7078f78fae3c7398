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
