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
