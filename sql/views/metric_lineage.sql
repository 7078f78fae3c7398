-- One row per metric with everything behind it:
-- metric -> model (base weights; adapter checksum) -> SFT dataset -> CAI data -> split -> source files,
-- and the constitution file; plus the evaluation prompt set and its source files.
-- Base-model rows have no adapter, SFT or training split (NULL there); every other column is filled.
-- A prompted model (the base under a constitution's persona) names that constitution and its file;
-- the initial-answer control arm has no constitution file (constitution_path '').
CREATE OR REPLACE VIEW metric_lineage AS
WITH metric AS (
    SELECT 'safety_scores' AS metric_table, model_id, judge || '/' || benchmark || '/' || category AS metric,
           rate AS value, run_id AS metric_run_id FROM safety_scores
    UNION ALL
    SELECT 'emergent_alignment', model_id, judge || '/' || category_role, delta, run_id FROM emergent_alignment
    UNION ALL
    SELECT 'persona_scores', model_id, method || '/' || subscale || CASE WHEN persona <> '' THEN ' as ' || persona ELSE '' END,
           mean, run_id FROM persona_scores
    UNION ALL
    SELECT 'projectability', model_id, method || '/' || constitution, signature, run_id FROM projectability
),
base AS (
    SELECT any_value(model_id) AS base_model, any_value(model_version) AS base_version FROM models WHERE role = 'student'
),
evalset AS (
    SELECT any_value(eval_version) AS eval_version FROM generations
),
eval_src AS (
    SELECT list(DISTINCT f.path ORDER BY f.path) AS eval_source_paths
    FROM (SELECT source, source_version FROM splits WHERE role = 'eval'
          UNION SELECT source, source_version FROM prompts WHERE role = 'benign') s  -- benchmarks, over-refusal sets
    JOIN source_files f ON f.source = s.source AND f.version = s.source_version
),
sft AS (
    SELECT DISTINCT constitution, scope, sft_version, split_version, constitution_version, cai_version FROM sft_examples
),
cons AS (
    SELECT DISTINCT constitution, constitution_version,
           json_extract_string(input_versions, '$.constitution_path') AS constitution_path
    FROM cai_revisions
),
mut AS (  -- the models under test (as the view models_under_test, which sorts after this file)
    SELECT DISTINCT model_id, model_kind AS kind, constitution FROM generations
),
train_src AS (
    SELECT s.scope, s.split_version, list(DISTINCT f.path ORDER BY f.path) AS train_source_paths
    FROM splits s JOIN source_files f ON f.source = s.source AND f.version = s.source_version
    WHERE s.role = 'train'
    GROUP BY ALL
)
SELECT
    m.metric_table, m.model_id, mut.kind AS model_kind, m.metric, m.value, m.metric_run_id,
    a.adapter_id, coalesce(a.constitution, mut.constitution) AS constitution, a.scope, a.seed, a.sha256 AS adapter_sha256, a.run_id AS adapter_run_id,
    sft.sft_version, sft.cai_version, sft.split_version, sft.constitution_version,
    cons.constitution_path, ts.train_source_paths,
    b.base_model, b.base_version, e.eval_version, es.eval_source_paths
FROM metric m
LEFT JOIN adapters a ON a.adapter_id = m.model_id
LEFT JOIN mut ON mut.model_id = m.model_id
LEFT JOIN sft ON sft.constitution = a.constitution AND sft.scope = a.scope AND sft.sft_version = a.sft_version
LEFT JOIN cons ON cons.constitution = coalesce(a.constitution, mut.constitution)
    AND (a.adapter_id IS NULL OR cons.constitution_version = sft.constitution_version)
LEFT JOIN train_src ts ON ts.scope = a.scope AND ts.split_version = sft.split_version
CROSS JOIN base b
CROSS JOIN evalset e
CROSS JOIN eval_src es;
