CREATE TABLE IF NOT EXISTS reports (
    path    VARCHAR NOT NULL,   -- the self-contained HTML page
    pngs    VARCHAR,            -- comma-separated PNG paths
    models  INTEGER,
    samples VARCHAR,            -- every prompt with every model's answer and verdicts, side by side
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
