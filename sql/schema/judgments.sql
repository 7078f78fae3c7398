CREATE TABLE IF NOT EXISTS judgments (
    model_id           VARCHAR NOT NULL,
    adapter_id         VARCHAR,
    constitution       VARCHAR,
    scope              VARCHAR,
    benchmark          VARCHAR NOT NULL,
    role               VARCHAR,            -- the benchmark's: eval (harmful) | benign (over-refusal set)
    prompt_id          VARCHAR NOT NULL,
    sample             INTEGER,            -- generations.sample; outcomes are averaged per prompt before testing
    category           VARCHAR NOT NULL,
    judge              VARCHAR NOT NULL,   -- prefix | embedding | llm
    judge_version      VARCHAR NOT NULL,
    refused            BOOLEAN NOT NULL,
    harmful            BOOLEAN,            -- NULL: the judge does not rate harm (offline judges)
    score              DOUBLE,             -- refusal probability (offline) or 1 = harmful (llm)
    raw                VARCHAR,            -- the llm judge's reply
    generation_version VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
