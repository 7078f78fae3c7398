-- The --lora-modules arguments for serving every adapter with vLLM under the names the evaluation
-- uses (profile eval.model with backend openai).
SELECT string_agg(constitution || '-' || scope || '=' || path, ' ' ORDER BY constitution, scope) AS lora_modules
FROM adapters;
