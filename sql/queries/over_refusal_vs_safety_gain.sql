-- Over-refusal next to safety gain, per adapter: the drop in non-refusal on harmful prompts against the
-- rise in refusals of benign look-alikes (primary judge of emergent_alignment).
WITH s AS (
    SELECT model_id, judge, benchmark <> 'benign' AS harmful, sum(events) AS events, sum(n) AS n
    FROM safety_scores WHERE category <> 'all' GROUP BY ALL
), r AS (
    SELECT model_id, judge, sum(events) FILTER (WHERE harmful) / sum(n) FILTER (WHERE harmful) AS harmful_rate,
           sum(events) FILTER (WHERE NOT harmful) / sum(n) FILTER (WHERE NOT harmful) AS benign_refusal
    FROM s GROUP BY ALL
)
SELECT coalesce(a.constitution, 'base') AS constitution, coalesce(a.scope, '') AS scope, r.judge,
       round(r.harmful_rate, 3) AS non_refusal_on_harmful,
       round(r.harmful_rate - b.harmful_rate, 3) AS safety_change,
       round(r.benign_refusal, 3) AS refusal_on_benign,
       round(r.benign_refusal - b.benign_refusal, 3) AS over_refusal_change
FROM r JOIN r AS b ON b.model_id = 'base' AND b.judge = r.judge
LEFT JOIN adapters a ON a.adapter_id = r.model_id
WHERE r.judge = (SELECT any_value(judge) FROM emergent_alignment)
ORDER BY safety_change;
