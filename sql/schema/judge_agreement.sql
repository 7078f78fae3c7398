CREATE TABLE IF NOT EXISTS judge_agreement (
    judge_a    VARCHAR NOT NULL,
    judge_b    VARCHAR NOT NULL,
    field      VARCHAR NOT NULL,
    n          INTEGER,
    agreement  DOUBLE,
    kappa      DOUBLE,                 -- Cohen's kappa
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
