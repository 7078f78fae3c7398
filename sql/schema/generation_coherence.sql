-- One row per generation (generations' model_id, benchmark, prompt_id): the answer's mean per-token negative
-- log-likelihood under the BASE model after the bare user prompt, the same scorer for every model, and whether
-- it is incoherent (empty, or above eval.incoherent_nll). Join on (model_id, benchmark, prompt_id, sample,
-- generation_version).
CREATE TABLE IF NOT EXISTS generation_coherence (
    model_id           VARCHAR NOT NULL,
    model_kind         VARCHAR,
    benchmark          VARCHAR NOT NULL,
    role               VARCHAR,            -- eval (harmful prompts) | benign (over-refusal set)
    prompt_id          VARCHAR NOT NULL,
    sample             INTEGER,            -- the sampled answer (eval.samples); 0 with one answer per prompt
    category           VARCHAR,
    n_tokens           INTEGER,            -- the response's tokens (0: empty)
    nll_per_token      DOUBLE,             -- nats; NULL when empty or when no local weights could score it
    incoherent         BOOLEAN,            -- empty, or nll_per_token > eval.incoherent_nll; NULL: not scored
    empty              BOOLEAN NOT NULL,   -- empty or whitespace only
    scorer_version     VARCHAR,            -- weights hash of the base model that scored
    score_key          VARCHAR,            -- hash of (scorer, prompt, response): equal keys reuse the score
    generation_version VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
