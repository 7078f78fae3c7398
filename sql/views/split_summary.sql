CREATE OR REPLACE VIEW split_summary AS
SELECT scope, role, category, category_role, count(*) AS n
FROM splits
GROUP BY ALL
ORDER BY scope, role, category;
