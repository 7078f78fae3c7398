-- Projectability: how far each adapter moved toward its constitution's framework (signature change vs
-- base, bootstrap 95% CI over items), and whether the whole profile moved as expected (profile_fit).
SELECT constitution, scope, method, round(signature_change, 3) AS change, round(change_ci_low, 3) AS ci_low,
       round(change_ci_high, 3) AS ci_high, round(profile_fit, 3) AS profile_fit
FROM projectability
WHERE model_id <> 'base'
ORDER BY method, change DESC NULLS LAST;
