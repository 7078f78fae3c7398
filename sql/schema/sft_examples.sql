-- Chat examples for supervised fine-tuning, per constitution x scope.
CREATE TABLE IF NOT EXISTS sft_examples (
    constitution          VARCHAR NOT NULL,
    scope                 VARCHAR NOT NULL,
    seed                  INTEGER,           -- replicate (study.seeds)
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
