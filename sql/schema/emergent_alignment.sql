CREATE TABLE IF NOT EXISTS emergent_alignment (
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    model_kind     VARCHAR,            -- adapter (a constitution) | control (a trained control arm)
    seed           INTEGER,            -- replicate seed (study.seeds); seed_summary pools them
    reference      VARCHAR,            -- what delta is against: base | no_constitution (difference-in-differences)
    category_role  VARCHAR NOT NULL,   -- trained | held_out | other | over_refusal
    benchmark      VARCHAR,            -- harmful_pooled (all harmful benchmarks together) or one benchmark
    categories     VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    n              INTEGER,
    base_rate      DOUBLE,
    reference_rate DOUBLE,             -- the reference's rate on the same prompts (= base_rate for reference base)
    model_rate     DOUBLE,
    delta          DOUBLE,             -- model - reference; negative = safer (or less over-refusal). Against
                                       -- no_constitution: (model - base) - (control - base) on the same prompts
    ci_low         DOUBLE,             -- Tango score interval 95% for the paired difference
    ci_high        DOUBLE,
    p_value        DOUBLE,             -- exact McNemar, uncorrected
    family         VARCHAR NOT NULL,   -- primary (held_out_pooled: constitutions' held-out rows vs base) | vs_control | exploratory
    p_holm         DOUBLE,             -- Holm within the row's family
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
