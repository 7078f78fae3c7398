-- The --lora-modules arguments for serving every registered adapter with vLLM under the name the
-- evaluation asks it by (ealign_dagster.evaluation.models.served_name: <constitution>-<scope>-s<seed>;
-- profile eval.model with backend openai):
--   vllm serve <base> --enable-lora --max-lora-rank <train.rank> --lora-modules <this query's output>
-- Adapter paths are stored relative to the home; `ealign sql` sets the variable `home` to its folder.
SELECT string_agg(constitution || '-' || scope || '-s' || seed || '=' || getvariable('home') || '/' || path, ' '
                  ORDER BY constitution, scope, seed) AS lora_modules
FROM adapters;
