-- Evaluation. model_id is 'base', an adapter_id or 'prompted:<constitution>'; every row carries the versions behind it.
CREATE TABLE IF NOT EXISTS generations (
    model_id           VARCHAR NOT NULL,
    model_kind         VARCHAR,            -- base | adapter | control (a control arm's adapter) | prompted (base + persona)
    adapter_id         VARCHAR,            -- NULL for the base model and prompted models
    constitution       VARCHAR,            -- a constitution or a control arm (no_constitution | initial_answers)
    scope              VARCHAR,
    seed               INTEGER,            -- the adapter's replicate seed (study.seeds)
    benchmark          VARCHAR NOT NULL,   -- the source's name (harmbench_standard | harmbench_contextual | benign | ...)
    role               VARCHAR,            -- eval (harmful prompts) | benign (an over-refusal set)
    prompt_id          VARCHAR NOT NULL,
    sample             INTEGER,            -- 0 .. eval.samples - 1: the k-th sampled answer to this prompt
    category           VARCHAR NOT NULL,   -- over-refusal sets: the category the prompt resembles
    kind               VARCHAR,            -- over-refusal sets: why it looks harmful (free-form: homonym, fiction, ...)
    prompt             VARCHAR NOT NULL,
    response           VARCHAR NOT NULL,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    model_version      VARCHAR NOT NULL,   -- base weights hash, or the endpoint
    adapter_sha256     VARCHAR,
    eval_version       VARCHAR NOT NULL,   -- evaluation prompt set (eval splits + over-refusal sets)
    generation_version VARCHAR NOT NULL,   -- data version of this partition
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
