-- Every SFT response of a narrow scope, screened for held-out-category content as the training prompts
-- are (same scores, same thresholds; long responses passage by passage, the maximum kept). Flagged ones
-- leave sft_examples (action dropped, left-out reason response_leakage) or stay and fail the blocking
-- check sft_no_held_out_leakage (action kept), following splits.leakage_action.
CREATE TABLE IF NOT EXISTS leakage_responses (
    constitution         VARCHAR NOT NULL,
    scope                VARCHAR NOT NULL,
    seed                 INTEGER,           -- the replicate whose response it is
    prompt_id            VARCHAR NOT NULL,
    held_out             VARCHAR NOT NULL,
    held_out_similarity  DOUBLE,
    held_out_probability DOUBLE,
    n_passages           INTEGER,
    flagged              BOOLEAN NOT NULL,
    flagged_by           VARCHAR,           -- held_out_similarity | held_out_classifier
    action               VARCHAR,           -- dropped | kept; NULL when not flagged
    leakage_threshold    DOUBLE,
    leakage_probability  DOUBLE,
    run_id               VARCHAR NOT NULL,
    asset_key            VARCHAR NOT NULL,
    partition_key        VARCHAR NOT NULL,
    input_versions       JSON
);
