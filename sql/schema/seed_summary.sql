-- Across replicate seeds: one row per emergent_alignment cell (arm x scope x reference x category role
-- x benchmark), the per-seed deltas summarised and one pooled test (safety/seeds.py says how).
CREATE TABLE IF NOT EXISTS seed_summary (
    constitution   VARCHAR NOT NULL,   -- a constitution or a control arm
    scope          VARCHAR NOT NULL,
    model_kind     VARCHAR,            -- adapter | control
    reference      VARCHAR,            -- base | no_constitution
    category_role  VARCHAR NOT NULL,
    benchmark      VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    family         VARCHAR NOT NULL,   -- as in emergent_alignment; pooled_p_holm corrects within it
    n_seeds        INTEGER,
    seeds          VARCHAR,            -- the replicate seeds, comma-separated
    n              INTEGER,            -- paired prompts
    mean_delta     DOUBLE,             -- mean over seeds of emergent_alignment.delta
    sd_delta       DOUBLE,             -- SD over seeds (n - 1); NULL with one seed
    min_delta      DOUBLE,
    max_delta      DOUBLE,
    pooled_delta   DOUBLE,             -- mean over prompts of (per-prompt mean over seeds) - reference
    pooled_ci_low  DOUBLE,             -- Tango (one seed) or paired bootstrap over prompts, 95%
    pooled_ci_high DOUBLE,
    pooled_p       DOUBLE,             -- two-sided sign test over prompts (= exact McNemar with one seed)
    pooled_p_holm  DOUBLE,
    pooling        VARCHAR,            -- how the seeds were pooled, in words
    model_ids      VARCHAR,            -- the adapters pooled (emergent_alignment.model_id), comma-separated
    judge_version  VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
