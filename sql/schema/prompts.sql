CREATE TABLE IF NOT EXISTS prompts (
    prompt_id           VARCHAR NOT NULL,  -- content hash of the normalised text
    source              VARCHAR NOT NULL,
    source_ref          VARCHAR,           -- the row's own id / position in its source
    source_version      VARCHAR NOT NULL,  -- content hash of the source's files
    role                VARCHAR NOT NULL,  -- train (training pool) | eval (benchmark) | benign (over-refusal set)
    text                VARCHAR NOT NULL,
    category            VARCHAR,
    subcategory         VARCHAR,
    functional_category VARCHAR,           -- HarmBench: standard | contextual
    source_labels       VARCHAR,           -- the source's own labels, '|'-joined
    kind                VARCHAR,           -- over-refusal sets: why the prompt looks harmful (free-form)
    reference           BOOLEAN,           -- a prompt of a reference benchmark (prompts.reference)
    label_origin        VARCHAR NOT NULL,  -- source | mapped | embedding
    label_confidence    DOUBLE,            -- 1 for source/mapped; nearest-neighbour cosine otherwise
    assigned            BOOLEAN NOT NULL,  -- false: embedding confidence under the threshold
    n_chars             INTEGER,
    control_chars_removed INTEGER,     -- NUL and other control characters removed from the source text
    run_id              VARCHAR NOT NULL,
    asset_key           VARCHAR NOT NULL,
    partition_key       VARCHAR NOT NULL,
    input_versions      JSON
);
