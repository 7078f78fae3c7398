-- Which data and which training produced this number: the held-out result of the virtue adapter
-- trained on narrow harassment, traced to its adapter, SFT data, CAI data, split, source files and
-- constitution file.
SELECT metric_table, metric, round(value, 3) AS value, adapter_id, adapter_sha256, sft_version, cai_version,
       split_version, constitution_version, constitution_path, train_source_paths, base_version, eval_version,
       eval_source_paths
FROM metric_lineage
WHERE metric_table = 'emergent_alignment' AND constitution = 'virtue' AND scope = 'narrow_harassment'
  AND metric LIKE '%/held_out';
