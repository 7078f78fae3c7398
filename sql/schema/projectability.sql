CREATE TABLE IF NOT EXISTS projectability (
    model_id           VARCHAR NOT NULL,
    model_kind         VARCHAR,        -- base | adapter | control | prompted (base + the constitution's persona)
    seed               INTEGER,
    constitution       VARCHAR NOT NULL,
    framework          VARCHAR NOT NULL,
    scope              VARCHAR,
    method             VARCHAR NOT NULL,
    signature          DOUBLE,         -- target framework minus the mean of its rivals
    signature_ci_low   DOUBLE,
    signature_ci_high  DOUBLE,
    base_signature     DOUBLE,
    signature_change   DOUBLE,         -- vs base, paired over items
    change_ci_low      DOUBLE,
    change_ci_high     DOUBLE,
    profile_fit        DOUBLE,         -- cosine(observed change per subscale, expected profile)
    did_vs_control     DOUBLE,         -- adapters: signature minus the no_constitution control's (same scope, seed),
    did_ci_low         DOUBLE,         --   paired over items = (model - base) - (control - base)
    did_ci_high        DOUBLE,
    adapter_id         VARCHAR,
    interpretable      BOOLEAN,        -- known-persona validation and option mass pass (persona_diagnostics)
    not_interpretable_reason VARCHAR,  -- why not, '; '-joined; NULL when interpretable
    item_bank_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
