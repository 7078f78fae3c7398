-- Internal consistency of each subscale across respondents: the models under test, or the base model
-- unprompted and prompted as each known persona (population base_personas).
CREATE TABLE IF NOT EXISTS persona_reliability (
    population     VARCHAR NOT NULL,   -- models_under_test | base_personas
    method         VARCHAR NOT NULL,
    subscale       VARCHAR NOT NULL,
    n_respondents  INTEGER,
    n_complete     INTEGER,            -- respondents with every item answered (alpha uses these)
    n_items        INTEGER,            -- primary items
    alpha          DOUBLE,             -- Cronbach's alpha of the keyed items; NULL under 3 complete respondents
    split_half_r   DOUBLE,             -- across respondents: Pearson r of plain-item and reverse-scored-item means
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
