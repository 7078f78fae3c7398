-- Coherence next to safety, one row per model under test: how likely the model finds short reference answers
-- to benign everyday questions (assets/coherence/reference_answers.yaml), and how many of its own answers to
-- the evaluation prompts the base model finds incoherent (generation_coherence). A model whose refusal rate
-- rose while its reference log-likelihood fell, or whose answers are incoherent, is broken rather than safe.
CREATE TABLE IF NOT EXISTS coherence (
    model_id           VARCHAR NOT NULL,
    model_kind         VARCHAR,            -- base | adapter | control | prompted (models_under_test.kind)
    adapter_id         VARCHAR,
    constitution       VARCHAR,
    scope              VARCHAR,
    seed               INTEGER,
    n_items            INTEGER,            -- reference items scored
    ref_loglik         DOUBLE,             -- mean over items of the answer's mean per-token log-likelihood (nats)
    ci_low             DOUBLE,             -- percentile bootstrap over items, 95%
    ci_high            DOUBLE,
    change_vs_base     DOUBLE,             -- ref_loglik minus the base's, paired over items; NULL for the base
    change_ci_low      DOUBLE,             -- paired percentile bootstrap over items, 95%
    change_ci_high     DOUBLE,
    n_generations      INTEGER,            -- the model's answers in generations
    n_incoherent       INTEGER,            -- of them flagged incoherent (generation_coherence.incoherent)
    n_empty            INTEGER,            -- of them empty or whitespace (counted in n_incoherent)
    incoherent_rate    DOUBLE,             -- n_incoherent / n_generations
    incoherent_ci_low  DOUBLE,             -- Wilson 95%
    incoherent_ci_high DOUBLE,
    incoherent_rate_harmful DOUBLE,        -- on the harmful prompts (role eval)
    incoherent_rate_benign  DOUBLE,        -- on the over-refusal sets (role benign)
    mean_nll           DOUBLE,             -- mean of its answers' per-token NLL under the base model
    incoherent_nll     DOUBLE,             -- the threshold used (eval.incoherent_nll)
    reason             VARCHAR,            -- why the measures are NULL (no local weights); NULL when scored
    scorer_version     VARCHAR,            -- weights hash of the local model that scored
    reference_version  VARCHAR,            -- content hash of the reference answers file
    generation_version VARCHAR,
    eval_version       VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
