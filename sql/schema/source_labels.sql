-- Source labels that are neither in the source's label map nor a taxonomy category, per source, and
-- what the source's `unmapped` rule did with their rows (embed: assigned by embedding; drop: left out).
CREATE TABLE IF NOT EXISTS source_labels (
    source         VARCHAR NOT NULL,
    label          VARCHAR NOT NULL,
    rule           VARCHAR NOT NULL,   -- embed | drop
    rows           INTEGER NOT NULL,
    run_id         VARCHAR NOT NULL,
    asset_key      VARCHAR NOT NULL,
    partition_key  VARCHAR NOT NULL,
    input_versions JSON
);
