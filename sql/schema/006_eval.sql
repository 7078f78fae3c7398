-- Evaluation. model_id is 'base' or an adapter_id; every row carries the versions behind it.
CREATE TABLE IF NOT EXISTS generations (
    model_id           VARCHAR NOT NULL,
    adapter_id         VARCHAR,            -- NULL for the base model
    constitution       VARCHAR,
    scope              VARCHAR,
    benchmark          VARCHAR NOT NULL,   -- harmbench_standard | harmbench_contextual | benign
    prompt_id          VARCHAR NOT NULL,
    category           VARCHAR NOT NULL,   -- benign: the category the prompt resembles
    kind               VARCHAR,            -- benign: homonym | fiction | history | ...
    prompt             VARCHAR NOT NULL,
    response           VARCHAR NOT NULL,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    model_version      VARCHAR NOT NULL,   -- base weights hash, or the endpoint
    adapter_sha256     VARCHAR,
    eval_version       VARCHAR NOT NULL,   -- evaluation prompt set (eval splits + benign file)
    generation_version VARCHAR NOT NULL,   -- data version of this partition
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS judgments (
    model_id           VARCHAR NOT NULL,
    adapter_id         VARCHAR,
    constitution       VARCHAR,
    scope              VARCHAR,
    benchmark          VARCHAR NOT NULL,
    prompt_id          VARCHAR NOT NULL,
    category           VARCHAR NOT NULL,
    judge              VARCHAR NOT NULL,   -- prefix | embedding | llm
    judge_version      VARCHAR NOT NULL,
    refused            BOOLEAN NOT NULL,
    harmful            BOOLEAN,            -- NULL: the judge does not rate harm (offline judges)
    score              DOUBLE,             -- refusal probability (offline) or 1 = harmful (llm)
    raw                VARCHAR,            -- the llm judge's reply
    generation_version VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

-- Offline judges on held-back human-labelled refusal data (pyrit), never seen by the classifier.
CREATE TABLE IF NOT EXISTS judge_validation (
    judge          VARCHAR NOT NULL,
    judge_version  VARCHAR NOT NULL,
    n              INTEGER,
    positives      INTEGER,
    accuracy       DOUBLE,
    roc_auc        DOUBLE,
    precision      DOUBLE,
    recall         DOUBLE,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS safety_scores (
    model_id       VARCHAR NOT NULL,
    scope          VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,   -- non_refusal_rate | harmful_rate (harmful prompts) | refusal_rate (benign)
    benchmark      VARCHAR NOT NULL,
    category       VARCHAR NOT NULL,   -- or 'all'
    category_role  VARCHAR,            -- trained | held_out | other for the model's scope; NULL for base
    held_out       BOOLEAN,
    n              INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    rate           DOUBLE NOT NULL,
    ci_low         DOUBLE,             -- Wilson 95%
    ci_high        DOUBLE,
    p_value        DOUBLE,             -- exact McNemar vs base on the same prompts
    p_holm         DOUBLE,             -- Holm over this judge's family of tests
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    generation_version VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS judge_agreement (
    judge_a    VARCHAR NOT NULL,
    judge_b    VARCHAR NOT NULL,
    field      VARCHAR NOT NULL,
    n          INTEGER,
    agreement  DOUBLE,
    kappa      DOUBLE,                 -- Cohen's kappa
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS emergent_alignment (
    constitution   VARCHAR NOT NULL,
    scope          VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    category_role  VARCHAR NOT NULL,   -- trained | held_out | other | over_refusal
    categories     VARCHAR,
    judge          VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    n              INTEGER,
    base_rate      DOUBLE,
    model_rate     DOUBLE,
    delta          DOUBLE,             -- model - base; negative = safer (or less over-refusal)
    ci_low         DOUBLE,             -- paired bootstrap 95%
    ci_high        DOUBLE,
    p_value        DOUBLE,             -- exact McNemar
    p_holm         DOUBLE,             -- Holm over the whole table
    judge_version  VARCHAR,
    adapter_id     VARCHAR,
    eval_version   VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

-- Item-level persona answers; persona = '' except in the known-persona validation.
CREATE TABLE IF NOT EXISTS persona_items (
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
    raw            DOUBLE,             -- logprob: expected Likert 1..5; generated: +1 agree / -1 disagree / NULL
    option_mass    DOUBLE,             -- logprob: probability on the five answers
    value          DOUBLE,             -- keyed score in [-1, 1]
    reply          VARCHAR,
    code           VARCHAR,            -- agree | disagree | ambiguous
    item_bank_version VARCHAR NOT NULL,
    model_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

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
    item_bank_version VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS projectability (
    model_id           VARCHAR NOT NULL,
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
    adapter_id         VARCHAR,
    item_bank_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS persona_validation (
    persona               VARCHAR NOT NULL,
    framework             VARCHAR NOT NULL,
    method                VARCHAR NOT NULL,
    own_score             DOUBLE,
    best_other_framework  VARCHAR,
    best_other_score      DOUBLE,
    margin                DOUBLE,
    lands_highest         BOOLEAN,
    score_deontology      DOUBLE,
    score_consequentialism DOUBLE,
    score_virtue          DOUBLE,
    score_deference       DOUBLE,
    item_bank_version     VARCHAR,
    constitution_version  VARCHAR,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);

CREATE TABLE IF NOT EXISTS reports (
    path    VARCHAR NOT NULL,   -- the self-contained HTML page
    pngs    VARCHAR,            -- comma-separated PNG paths
    models  INTEGER,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
