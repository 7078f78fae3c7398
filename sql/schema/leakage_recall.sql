-- The held-out leakage filter's recall on the probe set (share of held-out-category probes flagged) and
-- its false-positive rate (share of the scope's trained-category probes flagged), 95% Wilson intervals,
-- per narrow scope and probe style (all | direct | oblique).
CREATE TABLE IF NOT EXISTS leakage_recall (
    scope               VARCHAR NOT NULL,
    held_out            VARCHAR NOT NULL,
    style               VARCHAR NOT NULL,
    n_probes            INTEGER NOT NULL,  -- held-out-category probes
    n_flagged           INTEGER NOT NULL,
    recall              DOUBLE,
    recall_ci_low       DOUBLE,
    recall_ci_high      DOUBLE,
    n_negatives         INTEGER NOT NULL,  -- probes of the scope's own categories
    n_false_positives   INTEGER NOT NULL,
    false_positive_rate DOUBLE,
    fpr_ci_low          DOUBLE,
    fpr_ci_high         DOUBLE,
    precision           DOUBLE,            -- at the probe set's mix of positives and negatives
    auc_probability     DOUBLE,            -- held-out probes vs negatives, on the classifier's probability alone
    auc_similarity      DOUBLE,            -- ... on the similarity alone
    leakage_threshold   DOUBLE,
    leakage_probability DOUBLE,
    probes_version      VARCHAR NOT NULL,
    run_id              VARCHAR NOT NULL,
    asset_key           VARCHAR NOT NULL,
    partition_key       VARCHAR NOT NULL,
    input_versions      JSON
);
