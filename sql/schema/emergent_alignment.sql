CREATE TABLE IF NOT EXISTS emergent_alignment (
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    category_role  VARCHAR NOT NULL,   -- trained | held_out | other | over_refusal
    benchmark      VARCHAR,            -- harmful_pooled (all harmful benchmarks together) or one benchmark
    categories     VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    n              INTEGER,
    base_rate      DOUBLE,
    model_rate     DOUBLE,
    delta          DOUBLE,             -- model - base; negative = safer (or less over-refusal)
    ci_low         DOUBLE,             -- Tango score interval 95% for the paired difference
    ci_high        DOUBLE,
    p_value        DOUBLE,             -- exact McNemar, uncorrected
    family         VARCHAR NOT NULL,   -- primary (eval.primary_family = held_out_pooled: held-out rows) | exploratory
    p_holm         DOUBLE,             -- Holm within the row's family
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
