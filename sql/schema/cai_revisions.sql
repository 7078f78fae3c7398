-- Every critique -> revision, kept or not, with why.
CREATE TABLE IF NOT EXISTS cai_revisions (
    constitution          VARCHAR NOT NULL,  -- or a control arm: no_constitution | initial_answers
    seed                  INTEGER,           -- replicate (study.seeds): CAI sampled with cai.seed + seed
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
