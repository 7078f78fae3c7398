-- A split row with the versions behind it: split -> prompts table -> source files, taxonomy, profile.
CREATE OR REPLACE VIEW split_lineage AS
SELECT
    s.scope, s.role, s.prompt_id, s.category, s.split_version,
    s.run_id                                           AS split_run_id,
    p.source, p.source_version, p.label_origin,
    json_extract_string(s.input_versions, '$.prompts')  AS prompts_version,
    json_extract_string(s.input_versions, '$.taxonomy_file') AS taxonomy_version,
    json_extract_string(s.input_versions, '$."profile.splits"') AS profile_version,
    (SELECT list(DISTINCT f.path) FROM source_files f WHERE f.source = p.source AND f.version = p.source_version) AS source_paths
FROM splits s
JOIN prompts p USING (prompt_id);
