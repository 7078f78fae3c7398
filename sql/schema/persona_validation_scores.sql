-- Subscale scores of the base model system-prompted as each known persona (persona validation).
CREATE TABLE IF NOT EXISTS persona_validation_scores (
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
    item_bank_version VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
