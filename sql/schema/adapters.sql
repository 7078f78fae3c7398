-- One LoRA adapter per constitution (or trained control arm) x scope x replicate seed: the registry.
CREATE TABLE IF NOT EXISTS adapters (
    adapter_id       VARCHAR NOT NULL,  -- hash of constitution, scope, seed, base model, SFT version, hyper-parameters
    constitution     VARCHAR NOT NULL,
    scope            VARCHAR NOT NULL,
    seed             INTEGER NOT NULL,  -- replicate (study.seeds): trained with train.seed + seed
    base_model       VARCHAR NOT NULL,
    base_version     VARCHAR NOT NULL,
    sft_version      VARCHAR NOT NULL,
    hyperparams      JSON NOT NULL,
    examples         INTEGER,
    steps            INTEGER,
    train_loss       DOUBLE,            -- mean loss of the last (up to 10) optimizer steps
    tokens           BIGINT,            -- assistant tokens trained on
    seconds          DOUBLE,
    tokens_per_s     DOUBLE,
    device           VARCHAR,
    dtype            VARCHAR,
    peak_memory_mb   DOUBLE,
    resumed_from     INTEGER,           -- checkpoint step this materialization resumed from (0 = fresh)
    path             VARCHAR NOT NULL,  -- standard PEFT folder (PeftModel.from_pretrained, vLLM --lora-modules)
    sha256           VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
