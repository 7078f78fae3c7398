-- The held-out leakage filter on assets/leakage_probes.yaml, per narrow scope x probe: the filter's own
-- scores and decision for each held-out-category paraphrase (should be flagged) and each probe of the
-- scope's trained categories (should not). Written by `splits` with the split it measures.
CREATE TABLE IF NOT EXISTS leakage_probes (
    scope                VARCHAR NOT NULL,
    held_out             VARCHAR NOT NULL,
    probe_id             VARCHAR NOT NULL,
    category             VARCHAR NOT NULL,
    probe_role           VARCHAR NOT NULL,  -- held_out | trained (for this scope)
    style                VARCHAR NOT NULL,  -- direct | oblique
    text                 VARCHAR NOT NULL,
    held_out_similarity  DOUBLE,            -- max cosine to a held-out-category prompt
    held_out_probability DOUBLE,            -- the held-out classifier's probability
    flagged              BOOLEAN NOT NULL,
    flagged_by           VARCHAR,           -- held_out_similarity | held_out_classifier (split_audit's reasons)
    leakage_threshold    DOUBLE,
    leakage_probability  DOUBLE,
    probes_version       VARCHAR NOT NULL,  -- content hash of the probe file
    run_id               VARCHAR NOT NULL,
    asset_key            VARCHAR NOT NULL,
    partition_key        VARCHAR NOT NULL,
    input_versions       JSON
);
