-- Offline judges on held-back human-labelled refusal data (pyrit), never seen by the classifier.
-- One row per judge overall (category 'all') and per prompt category where the labels carry one
-- (pyrit's carry none). Positive class: refusal. Every metric has a 95% interval: Wilson for
-- accuracy, precision, recall and fpr; percentile bootstrap (seeded, refusals and non-refusals
-- resampled separately) for f1 and roc_auc; Fleiss-Cohen-Everitt large-sample for kappa.
-- A metric with an empty denominator is NULL and `note` says why.
CREATE TABLE IF NOT EXISTS judge_validation (
    judge          VARCHAR NOT NULL,
    judge_version  VARCHAR NOT NULL,
    category       VARCHAR,            -- 'all' or a prompt category of the labelled examples
    n              INTEGER,
    positives      INTEGER,            -- human-labelled refusals
    tp INTEGER, fp INTEGER, fn INTEGER, tn INTEGER,
    accuracy       DOUBLE,
    accuracy_ci_low DOUBLE, accuracy_ci_high DOUBLE,
    roc_auc        DOUBLE,             -- of the judge's refusal score
    roc_auc_ci_low DOUBLE, roc_auc_ci_high DOUBLE,
    precision      DOUBLE,
    precision_ci_low DOUBLE, precision_ci_high DOUBLE,
    recall         DOUBLE,             -- true-positive rate
    recall_ci_low DOUBLE, recall_ci_high DOUBLE,
    fpr            DOUBLE,             -- false-positive rate: human non-refusals the judge calls refusals
    fpr_ci_low DOUBLE, fpr_ci_high DOUBLE,
    f1             DOUBLE,
    f1_ci_low DOUBLE, f1_ci_high DOUBLE,
    kappa          DOUBLE,             -- Cohen's kappa, judge vs human labels
    kappa_ci_low DOUBLE, kappa_ci_high DOUBLE,
    note           VARCHAR,            -- why a metric or its interval is NULL
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
