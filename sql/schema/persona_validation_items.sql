-- Item-level answers of the base model system-prompted as each known persona (persona validation).
CREATE TABLE IF NOT EXISTS persona_validation_items (
    model_id       VARCHAR NOT NULL,
    adapter_id     VARCHAR,
    persona        VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    subscale       VARCHAR NOT NULL,
    reverse        BOOLEAN NOT NULL,
    rival          VARCHAR,
    paraphrase_of  VARCHAR,
    text           VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,   -- logprob | generated
    scale_reversed BOOLEAN,            -- logprob: asked with 1 = strongly agree (half the items; counterbalanced)
    raw            DOUBLE,             -- logprob: expected Likert 1..5, 5 = agree whichever way asked; generated: +1 agree / -1 disagree / NULL
    option_mass    DOUBLE,             -- logprob: probability on the five answers
    value          DOUBLE,             -- keyed score in [-1, 1]
    reply          VARCHAR,
    code           VARCHAR,            -- agree | disagree | ambiguous
    item_bank_version VARCHAR NOT NULL,
    model_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
