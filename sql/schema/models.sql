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
