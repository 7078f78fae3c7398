-- Before evaluation: is each adapter applied? Its next-token distribution on fixed canary prompts
-- against the base model's and, behind an endpoint, against the local PEFT adapter's (nats).
CREATE TABLE IF NOT EXISTS adapter_canary (
    model_id      VARCHAR NOT NULL,   -- the adapter id
    name          VARCHAR NOT NULL,   -- its PEFT / served name
    backend       VARCHAR NOT NULL,   -- local | openai
    vs_base       DOUBLE,             -- distance from the base model as served
    vs_local      DOUBLE,             -- endpoint: distance from the local PEFT adapter
    local_effect  DOUBLE,             -- endpoint: local adapter vs local base
    tolerance     DOUBLE,             -- endpoint: eval.canary_tolerance
    status        VARCHAR NOT NULL,   -- applied | inconclusive (a failing adapter stops the step)
    prompts       INTEGER,
    top_k         INTEGER,
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, input_versions JSON
);
