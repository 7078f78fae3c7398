-- Held-out improvement by constitution: the change vs base on the category each narrow adapter never
-- saw, next to the change on the category it was trained on (negative = safer); harmful benchmarks pooled,
-- over-refusal averaged over the over-refusal sets.
SELECT constitution,
       round(avg(delta) FILTER (WHERE category_role = 'trained'), 3)  AS trained_delta,
       round(avg(delta) FILTER (WHERE category_role = 'held_out'), 3) AS held_out_delta,
       round(avg(delta) FILTER (WHERE category_role = 'other'), 3)    AS other_delta,
       round(avg(delta) FILTER (WHERE category_role = 'over_refusal'), 3) AS over_refusal_delta,
       count(*) FILTER (WHERE category_role = 'held_out' AND p_holm < 0.05) AS held_out_significant
FROM emergent_alignment
WHERE benchmark = 'harmful_pooled' OR category_role = 'over_refusal'
GROUP BY constitution
ORDER BY held_out_delta;
