-- How many prompts each filter removed from each scope.
SELECT scope, reason, count(*) AS dropped, round(avg(score), 3) AS mean_score
FROM split_audit GROUP BY ALL ORDER BY scope, reason;
