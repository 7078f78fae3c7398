-- Models the pipeline built or loaded (base models; adapters live in `adapters`).
CREATE TABLE IF NOT EXISTS models (
    model_id       VARCHAR NOT NULL,  -- as configured: offline:..., tiny-random, an HF id, an endpoint model
    role           VARCHAR NOT NULL,  -- student | teacher
    backend        VARCHAR NOT NULL,  -- local | openai
    path           VARCHAR,
    model_version  VARCHAR NOT NULL,  -- content hash of weights + tokenizer (local) or endpoint:model
    parameters     BIGINT,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

-- The student's helpful-only answer to every training prompt (all scopes share them).
CREATE TABLE IF NOT EXISTS initial_responses (
    prompt_id          VARCHAR NOT NULL,
    prompt             VARCHAR NOT NULL,
    response           VARCHAR NOT NULL,
    model_id           VARCHAR NOT NULL,
    model_version      VARCHAR NOT NULL,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

-- Every critique -> revision, kept or not, with why.
CREATE TABLE IF NOT EXISTS cai_revisions (
    constitution          VARCHAR NOT NULL,
    prompt_id             VARCHAR NOT NULL,
    candidate             INTEGER NOT NULL,  -- best-of-n index
    round                 INTEGER NOT NULL,
    principle_id          VARCHAR NOT NULL,
    prompt                VARCHAR NOT NULL,
    initial               VARCHAR NOT NULL,
    critique              VARCHAR,
    revision              VARCHAR,
    critique_tokens       INTEGER,
    revision_tokens       INTEGER,
    prompt_tokens         INTEGER,
    judge                 VARCHAR,
    safety_initial        DOUBLE,            -- judge's refusal score of the initial answer
    safety_revision       DOUBLE,
    accepted              BOOLEAN NOT NULL,
    reject_reason         VARCHAR,           -- empty | copy_of_initial | length | less_safe_than_initial
    selected              BOOLEAN NOT NULL,  -- the revision that becomes SFT data for this prompt
    teacher_id            VARCHAR NOT NULL,
    teacher_version       VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

-- Chat examples for supervised fine-tuning, per constitution x scope.
CREATE TABLE IF NOT EXISTS sft_examples (
    constitution          VARCHAR NOT NULL,
    scope                 VARCHAR NOT NULL,
    prompt_id             VARCHAR NOT NULL,
    category              VARCHAR NOT NULL,
    prompt                VARCHAR NOT NULL,
    response              VARCHAR NOT NULL,
    principle_id          VARCHAR,
    n_tokens              INTEGER,           -- prompt + response, student chat template
    response_tokens       INTEGER,
    sft_version           VARCHAR NOT NULL,  -- data version of this partition
    split_version         VARCHAR NOT NULL,
    constitution_version  VARCHAR NOT NULL,
    cai_version           VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
