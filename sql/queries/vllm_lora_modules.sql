-- The --lora-modules arguments for serving every adapter with vLLM under the names the evaluation
-- uses (profile eval.model with backend openai).
-- Adapter paths are stored relative to the home; `ealign sql` sets the variable `home` to its folder.
SELECT string_agg(constitution || '-' || scope || '=' || getvariable('home') || '/' || path, ' '
                  ORDER BY constitution, scope) AS lora_modules
FROM adapters;
