CREATE TABLE IF NOT EXISTS splits (
    scope               VARCHAR NOT NULL,
    role                VARCHAR NOT NULL,  -- train | eval
    prompt_id           VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,
    source_version      VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,
    category_role       VARCHAR NOT NULL,  -- trained | held_out | other (for this scope)
    held_out            BOOLEAN NOT NULL,
    functional_category VARCHAR,
    held_out_similarity DOUBLE,            -- train rows: max cosine to any held-out-category prompt
    held_out_probability DOUBLE,           -- train rows: classifier probability of the held-out category
    eval_similarity     DOUBLE,            -- train rows: max cosine to any evaluation prompt
    split_version       VARCHAR NOT NULL,  -- data version of this scope's split
    run_id              VARCHAR NOT NULL,
    asset_key           VARCHAR NOT NULL,
    partition_key       VARCHAR NOT NULL,
    input_versions      JSON
);
