-- Agreement of two judges on the refusal verdict over the same responses. Rows: pooled (model_id,
-- role and category all 'all'), per model, per role, and per role x category.
CREATE TABLE IF NOT EXISTS judge_agreement (
    judge_a    VARCHAR NOT NULL,
    judge_b    VARCHAR NOT NULL,
    field      VARCHAR NOT NULL,
    model_id   VARCHAR,                -- 'all' or one model under test
    role       VARCHAR,                -- 'all' | eval (harmful prompts) | benign (over-refusal sets)
    category   VARCHAR,                -- 'all' or a prompt category (over-refusal sets: the one resembled)
    n          INTEGER,
    agreement  DOUBLE,
    agreement_ci_low  DOUBLE,          -- Wilson 95%
    agreement_ci_high DOUBLE,
    rate_a     DOUBLE,                 -- refusal rate by judge_a
    rate_b     DOUBLE,
    kappa      DOUBLE,                 -- Cohen's kappa; NULL where undefined (see note)
    kappa_ci_low  DOUBLE,              -- 95%, large-sample (Fleiss-Cohen-Everitt) standard error, clipped to [-1, 1]
    kappa_ci_high DOUBLE,
    note       VARCHAR,                -- why kappa or its interval is NULL
    judge_a_version    VARCHAR,
    judge_b_version    VARCHAR,
    adapter_id         VARCHAR,        -- per-model rows
    generation_version VARCHAR,        -- per-model rows
    eval_version       VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
