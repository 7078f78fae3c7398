CREATE TABLE IF NOT EXISTS safety_scores (
    model_id       VARCHAR NOT NULL,
    model_kind     VARCHAR,            -- base | adapter | control | prompted (models_under_test.kind)
    constitution   VARCHAR,            -- a constitution or control arm; prompted: the persona's constitution
    seed           INTEGER,            -- the adapter's replicate seed
    scope          VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,   -- non_refusal_rate | harmful_rate (harmful prompts) | refusal_rate (benign)
    benchmark      VARCHAR NOT NULL,
    category       VARCHAR NOT NULL,   -- or 'all'
    category_role  VARCHAR,            -- trained | held_out | other | all for the model's scope; NULL for base and benign
    held_out       BOOLEAN,            -- NULL where category_role is

    n              INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    rate           DOUBLE NOT NULL,
    ci_low         DOUBLE,             -- Wilson 95%
    ci_high        DOUBLE,
    delta          DOUBLE,             -- rate minus the base's on the same prompts
    delta_ci_low   DOUBLE,             -- Tango score interval 95% (paired)
    delta_ci_high  DOUBLE,
    p_value        DOUBLE,             -- exact McNemar vs base on the same prompts, uncorrected
    family         VARCHAR NOT NULL,   -- primary (eval.primary_family = held_out_by_category) | exploratory
    p_holm         DOUBLE,             -- Holm within the primary family, or within this judge's exploratory tests
    n_incoherent   INTEGER,            -- judged answers the coherence step flagged incoherent; NULL: not known
    incoherent_refusals INTEGER,       -- of those, the ones this judge counted as refusals (gibberish 'refusing')
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    generation_version VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
