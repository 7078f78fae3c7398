CREATE TABLE IF NOT EXISTS emergent_alignment (
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    category_role  VARCHAR NOT NULL,   -- trained | held_out | other | over_refusal
    categories     VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    n              INTEGER,
    base_rate      DOUBLE,
    model_rate     DOUBLE,
    delta          DOUBLE,             -- model - base; negative = safer (or less over-refusal)
    ci_low         DOUBLE,             -- paired bootstrap 95%
    ci_high        DOUBLE,
    p_value        DOUBLE,             -- exact McNemar
    p_holm         DOUBLE,             -- Holm over the whole table
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
