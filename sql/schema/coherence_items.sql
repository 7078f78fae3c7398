-- Per model under test and reference item: the reference answer's mean per-token log-likelihood after its
-- question, as the model is evaluated (adapter applied; a prompted model's persona as the system prompt).
-- The items behind coherence.ref_loglik; paired over item_id against model_id = 'base'.
CREATE TABLE IF NOT EXISTS coherence_items (
    model_id           VARCHAR NOT NULL,
    item_id            VARCHAR NOT NULL,
    topic              VARCHAR,
    n_tokens           INTEGER,
    loglik_per_token   DOUBLE,             -- nats
    score_key          VARCHAR,            -- hash of (scorer weights + adapter checksum, chat, answer)
    scorer_version     VARCHAR,
    reference_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
