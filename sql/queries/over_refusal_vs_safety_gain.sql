-- Over-refusal next to safety gain, per adapter and over-refusal set: the drop in non-refusal on harmful
-- prompts against the rise in refusals of each set's safe look-alikes (primary judge of emergent_alignment).
WITH s AS (
    SELECT model_id, judge, CASE WHEN metric = 'refusal_rate' THEN benchmark END AS over_refusal_set,
           sum(events) AS events, sum(n) AS n
    FROM safety_scores WHERE category <> 'all' GROUP BY ALL
), harm AS (
    SELECT model_id, judge, sum(events) / sum(n) AS rate FROM s WHERE over_refusal_set IS NULL GROUP BY ALL
), refusal AS (
    SELECT model_id, judge, over_refusal_set, sum(events) / sum(n) AS rate FROM s WHERE over_refusal_set IS NOT NULL GROUP BY ALL
)
SELECT coalesce(a.constitution, 'base') AS constitution, coalesce(a.scope, '') AS scope, h.judge, f.over_refusal_set,
       round(h.rate, 3) AS non_refusal_on_harmful,
       round(h.rate - hb.rate, 3) AS safety_change,
       round(f.rate, 3) AS refusal_on_set,
       round(f.rate - fb.rate, 3) AS over_refusal_change
FROM harm h
JOIN harm AS hb ON hb.model_id = 'base' AND hb.judge = h.judge
JOIN refusal f ON f.model_id = h.model_id AND f.judge = h.judge
JOIN refusal AS fb ON fb.model_id = 'base' AND fb.judge = f.judge AND fb.over_refusal_set = f.over_refusal_set
LEFT JOIN adapters a ON a.adapter_id = h.model_id
WHERE h.judge = (SELECT any_value(judge) FROM emergent_alignment)
ORDER BY f.over_refusal_set, safety_change;
