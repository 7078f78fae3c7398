CREATE TABLE IF NOT EXISTS train_log (
    adapter_id     VARCHAR NOT NULL,
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    seed           INTEGER,
    step           INTEGER NOT NULL,
    loss           DOUBLE,
    tokens         INTEGER,
    seconds        DOUBLE,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
