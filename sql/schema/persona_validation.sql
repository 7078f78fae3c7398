CREATE TABLE IF NOT EXISTS persona_validation (
    persona               VARCHAR NOT NULL,
    framework             VARCHAR NOT NULL,
    method                VARCHAR NOT NULL,
    own_score             DOUBLE,
    best_other_framework  VARCHAR,
    best_other_score      DOUBLE,
    margin                DOUBLE,
    lands_highest         BOOLEAN,
    score_deontology      DOUBLE,
    score_consequentialism DOUBLE,
    score_virtue          DOUBLE,
    score_deference       DOUBLE,
    item_bank_version     VARCHAR,
    constitution_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
