-- Every prompt a filter removed from a scope's training pool (or from the evaluation set: reason
-- unassigned_eval, its category was a low-confidence guess; eval_contamination, a prompt of a
-- benchmark outside prompts.reference nearly duplicates a training prompt), and why.
CREATE TABLE IF NOT EXISTS split_audit (
    scope          VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    source         VARCHAR,
    category       VARCHAR,
    reason         VARCHAR NOT NULL,  -- label | unassigned | unassigned_eval | eval_contamination | held_out_similarity | held_out_classifier | contamination | length
    score          DOUBLE,            -- similarity, confidence or length behind the decision
    threshold      DOUBLE,
    run_id         VARCHAR NOT NULL,
    asset_key      VARCHAR NOT NULL,
    partition_key  VARCHAR NOT NULL,
    input_versions JSON
);
