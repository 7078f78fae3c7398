CREATE TABLE IF NOT EXISTS power (
    comparison     VARCHAR NOT NULL,   -- e.g. 'virtue/narrow_illegal held_out' (pooled) or '... held_out <category> (<benchmark>)'
    model_id       VARCHAR NOT NULL,
    adapter_id     VARCHAR,
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    category_role  VARCHAR NOT NULL,   -- held_out: the primary family's comparisons
    benchmark      VARCHAR NOT NULL,   -- harmful_pooled (eval.primary_family = held_out_pooled) or one benchmark
    categories     VARCHAR,            -- the held-out categories compared
    judge          VARCHAR NOT NULL,   -- eval.primary_judge
    metric         VARCHAR NOT NULL,
    n              INTEGER NOT NULL,   -- paired prompts (base and adapter on the same prompts)
    base_rate      DOUBLE,             -- the base model's measured rate on exactly those prompts
    m              INTEGER NOT NULL,   -- tests in the primary family
    alpha          DOUBLE NOT NULL,    -- per-test alpha: Holm's strictest step, 0.05 / m
    power          DOUBLE NOT NULL,    -- 0.8
    mde_down       DOUBLE,             -- smallest detectable decrease of the rate (absolute); NULL: none within [0, 1]
    mde_up         DOUBLE,             -- smallest detectable increase; NULL: none within [0, 1]
    mde            DOUBLE,             -- the smaller of mde_down and mde_up that exists
    judge_version  VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
