-- Offline judges on held-back human-labelled refusal data (pyrit), never seen by the classifier.
CREATE TABLE IF NOT EXISTS judge_validation (
    judge          VARCHAR NOT NULL,
    judge_version  VARCHAR NOT NULL,
    n              INTEGER,
    positives      INTEGER,
    accuracy       DOUBLE,
    roc_auc        DOUBLE,
    precision      DOUBLE,
    recall         DOUBLE,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
