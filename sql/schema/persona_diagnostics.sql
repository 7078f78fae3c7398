-- Can a run's persona answers be read? One row per model under test (persona = '') and per known-persona run
-- of the base model (persona = its name), per method.
CREATE TABLE IF NOT EXISTS persona_diagnostics (
    model_id          VARCHAR NOT NULL,
    persona           VARCHAR NOT NULL,
    method            VARCHAR NOT NULL,   -- logprob | generated
    n_items           INTEGER,            -- primary items (paraphrases left out)
    n_answered        INTEGER,
    option_mass_mean  DOUBLE,             -- logprob: mean probability on the answers 1..5
    option_mass_min   DOUBLE,
    low_mass_items    INTEGER,            -- items with option mass < 0.5
    low_mass          BOOLEAN,            -- option_mass_mean < 0.5
    acquiescence      DOUBLE,             -- mean agreement before keying, plain and reverse items weighted equally (-1..1)
    scale_order_gap   DOUBLE,             -- mean agreement on items asked 5 = agree minus on items asked 1 = agree
    plain_reverse_r   DOUBLE,             -- over subscales: Pearson r of plain-item and reverse-scored-item means
    plain_reverse_n   INTEGER,            -- subscales in that correlation
    interpretable     BOOLEAN,
    not_interpretable_reason VARCHAR,
    adapter_id        VARCHAR,
    item_bank_version VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
