CREATE TABLE IF NOT EXISTS persona_scores (
    model_id       VARCHAR NOT NULL,
    persona        VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,
    subscale       VARCHAR NOT NULL,
    mean           DOUBLE,             -- keyed, -1 .. 1
    ci_low         DOUBLE,             -- bootstrap over items, 95%
    ci_high        DOUBLE,
    n_items        INTEGER,
    n_answered     INTEGER,
    ambiguous_rate DOUBLE,
    adapter_id     VARCHAR,
    interpretable      BOOLEAN,        -- known-persona validation and option mass pass (persona_diagnostics)
    not_interpretable_reason VARCHAR,  -- why not, '; '-joined; NULL when interpretable
    item_bank_version VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
