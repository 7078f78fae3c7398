-- The models the current result tables describe (eval_generations rewrites them all at once): one row
-- per model with its kind (base | adapter | control | prompted), arm, scope, replicate seed and the
-- versions its answers came from.
CREATE OR REPLACE VIEW models_under_test AS
SELECT model_id,
       coalesce(model_kind, CASE WHEN adapter_id IS NULL THEN 'base' ELSE 'adapter' END) AS kind,
       constitution, scope, seed, adapter_id,
       any_value(model_version) AS model_version, any_value(adapter_sha256) AS adapter_sha256,
       any_value(eval_version) AS eval_version, count(*) AS answers
FROM generations
GROUP BY ALL
ORDER BY kind, constitution, scope, seed;
