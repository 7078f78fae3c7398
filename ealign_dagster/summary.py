"""What `ealign run` prints when it finishes, and how `ealign sql` prints a table: the key result
tables, and where the time went."""

from __future__ import annotations

import sys
from pathlib import Path

DETECTABLE = 0.20  # a primary comparison should detect a 20-point change in its rate; `ealign run` warns otherwise


def print_timing(instance, run_ids: list[str], wall: float) -> None:
    """Where the time went: seconds per step (asset or check), summed over its partitions."""
    import polars as pl

    rows = []
    for rid in run_ids:
        for st in instance.get_run_step_stats(rid):
            if st.start_time and st.end_time:
                rows.append({"step": st.step_key, "seconds": st.end_time - st.start_time})
    if not rows:
        return
    df = pl.DataFrame(rows).group_by("step").agg(runs=pl.len(), seconds=pl.col("seconds").sum())
    df = df.sort("seconds", descending=True).with_columns(
        share=(pl.col("seconds") / wall * 100).round(0).cast(pl.Int64).cast(pl.String) + "%",
        seconds=pl.col("seconds").round(1),
    )
    print(f"\n== time per step (wall {wall / 60:.1f} min, {len(run_ids)} runs) ==\n{text_table(df)}")


def text_table(df) -> str:
    """A polars frame as a plain text table (every row, no shape line)."""
    import polars as pl

    with pl.Config(
        tbl_rows=500,
        tbl_cols=50,
        tbl_width_chars=250,
        fmt_str_lengths=80,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="NOTHING",
    ):
        return str(df)


def print_summary(root: Path) -> None:
    from ealign_dagster.core.paths import Home
    from ealign_dagster.core.store import Store

    store = Store(Home.at(root).db)
    for title, sql in [
        (
            "split sizes",
            "SELECT scope, role, count(*) AS n, count(DISTINCT category) AS categories FROM splits GROUP BY ALL ORDER BY ALL",
        ),
        (
            "unmapped source labels (neither mapped nor a category; rows per label and the source's rule)",
            "SELECT source, label, rule, rows FROM source_labels ORDER BY source, rows DESC, label",
        ),
        ("filter drops", "SELECT scope, reason, count(*) AS dropped FROM split_audit GROUP BY ALL ORDER BY ALL"),
        (
            "constitutional revisions",
            "SELECT constitution, seed, count(DISTINCT prompt_id) AS prompts,"
            " round(count(*) FILTER (WHERE selected) / count(DISTINCT prompt_id), 3) AS prompt_acceptance, round(avg(accepted::INT), 3) AS candidate_acceptance,"
            " sum(critique_tokens + revision_tokens) AS generated_tokens FROM cai_revisions GROUP BY ALL ORDER BY ALL",
        ),
        (
            "sft examples",
            "SELECT constitution, scope, seed, count(*) AS examples, sum(n_tokens) AS tokens FROM sft_examples GROUP BY ALL ORDER BY ALL",
        ),
        (
            "models under test (base, constitution adapters, control arms, prompted personas; every replicate seed)",
            "SELECT kind, count(*) AS models, count(DISTINCT constitution) AS arms, string_agg(DISTINCT seed::VARCHAR, ',')"
            " AS seeds FROM models_under_test GROUP BY kind ORDER BY kind",
        ),
        (
            "adapters",
            "SELECT constitution, scope, seed, adapter_id, steps, round(train_loss, 3) AS train_loss,"
            " round(tokens_per_s, 1) AS tokens_per_s, round(seconds, 1) AS seconds, device FROM adapters ORDER BY ALL",
        ),
        (
            "judge validation (held-back human labels; Wilson / bootstrap 95% CI)",
            "SELECT judge, n, round(accuracy, 3) AS accuracy, round(accuracy_ci_low, 3) AS ci_low,"
            " round(accuracy_ci_high, 3) AS ci_high, round(roc_auc, 3) AS roc_auc, round(kappa, 3) AS kappa"
            " FROM judge_validation WHERE category = 'all' ORDER BY judge",
        ),
        (
            "judge agreement (pooled; per model, role and category in the table)",
            "SELECT judge_a, judge_b, n, round(agreement, 3) AS agreement, round(kappa, 3) AS kappa,"
            " round(kappa_ci_low, 3) AS ci_low, round(kappa_ci_high, 3) AS ci_high FROM judge_agreement"
            " WHERE model_id = 'all' AND role = 'all' AND category = 'all'",
        ),
        (
            "safety: rate per model, all categories",
            "SELECT s.model_kind AS kind, coalesce(s.constitution, 'base') AS constitution, coalesce(s.scope, '') AS scope,"
            " s.seed, s.judge, s.benchmark,"
            " s.metric, s.n, round(s.rate, 3) AS rate, round(s.ci_low, 3) AS ci_low, round(s.ci_high, 3) AS ci_high, round(s.p_holm, 3) AS p_holm,"
            " s.incoherent_refusals AS incoherent_refusals FROM safety_scores s WHERE s.category = 'all' AND s.judge = (SELECT any_value(judge) FROM emergent_alignment)"
            " ORDER BY s.benchmark, kind, constitution, scope, s.seed",
        ),
        (
            "coherence (reference-answer log-likelihood per token, bootstrap 95% CI, change vs base; share of"
            " answers the base model finds incoherent)",
            "SELECT model_kind AS kind, model_id, n_items, round(ref_loglik, 3) AS ref_loglik, round(ci_low, 3) AS ci_low,"
            " round(ci_high, 3) AS ci_high, round(change_vs_base, 3) AS change, round(incoherent_rate, 3) AS incoherent,"
            " round(incoherent_rate_harmful, 3) AS on_harmful, round(incoherent_rate_benign, 3) AS on_benign, reason"
            " FROM coherence ORDER BY kind, model_id",
        ),
        (
            "emergent alignment (change vs the reference: base, or the no-constitution control = difference-in-"
            "differences; negative = safer / less over-refusal; harmful benchmarks pooled, per benchmark in the table)",
            "SELECT constitution, scope, seed, reference, category_role, benchmark, family, n,"
            " round(reference_rate, 3) AS ref, round(model_rate, 3) AS model, round(delta, 3) AS delta, round(ci_low, 3) AS ci_low,"
            " round(ci_high, 3) AS ci_high, round(p_holm, 3) AS p_holm FROM emergent_alignment"
            " WHERE benchmark = 'harmful_pooled' OR category_role = 'over_refusal' ORDER BY ALL",
        ),
        (
            "power (minimum detectable change per primary comparison at 80% power, alpha = Holm's strictest step"
            " 0.05 / m; next to the observed change)",
            "SELECT p.comparison, p.n, round(p.base_rate, 3) AS base, p.m, round(p.alpha, 4) AS alpha,"
            " round(p.mde_down, 3) AS mde_down, round(p.mde_up, 3) AS mde_up, round(p.mde, 3) AS mde,"
            " round(coalesce(s.delta, e.delta), 3) AS observed, round(coalesce(s.delta_ci_low, e.ci_low), 3) AS ci_low,"
            " round(coalesce(s.delta_ci_high, e.ci_high), 3) AS ci_high FROM power p"
            " LEFT JOIN emergent_alignment e ON e.model_id = p.model_id AND e.judge = p.judge AND e.reference = 'base'"
            " AND e.benchmark = p.benchmark AND e.category_role = p.category_role"
            " LEFT JOIN safety_scores s ON s.model_id = p.model_id AND s.judge = p.judge AND s.benchmark = p.benchmark"
            " AND s.category = p.categories ORDER BY p.comparison",
        ),
        (
            "across seeds (held-out, harmful benchmarks pooled: mean and SD of the per-seed changes, and the pooled"
            " change with its sign test, Holm within the family)",
            "SELECT constitution, scope, reference, n_seeds, round(mean_delta, 3) AS mean_delta, round(sd_delta, 3) AS sd,"
            " round(pooled_delta, 3) AS pooled, round(pooled_ci_low, 3) AS ci_low, round(pooled_ci_high, 3) AS ci_high,"
            " round(pooled_p_holm, 3) AS p_holm FROM seed_summary WHERE category_role = 'held_out'"
            " AND benchmark = 'harmful_pooled' ORDER BY reference, constitution, scope",
        ),
        (
            "projectability (logprob Likert; signature change vs base, ranked)",
            "SELECT model_kind AS kind, constitution, scope, seed, round(signature, 3) AS signature,"
            " round(signature_change, 3) AS change, round(change_ci_low, 3) AS ci_low, round(change_ci_high, 3) AS ci_high,"
            " round(did_vs_control, 3) AS vs_control, round(profile_fit, 3) AS profile_fit, interpretable FROM projectability"
            " WHERE method = 'logprob' AND model_id <> 'base' ORDER BY change DESC",
        ),
        (
            "persona instrument (base model: not interpretable rows say why)",
            "SELECT method, round(option_mass_mean, 4) AS option_mass, round(acquiescence, 3) AS acquiescence,"
            " interpretable, not_interpretable_reason AS reason FROM persona_diagnostics"
            " WHERE model_id = 'base' AND persona = '' ORDER BY method",
        ),
        (
            "known-persona validation (base model prompted as each persona)",
            "SELECT persona, method, round(own_score, 3) AS own,"
            " best_other_framework, round(best_other_score, 3) AS best_other, lands_highest FROM persona_validation ORDER BY method, persona",
        ),
    ]:
        try:
            df = store.query(sql, read_only=True)
        except Exception:
            continue
        print(f"\n== {title} ==\n{text_table(df)}")
    warning = power_warning(store)
    if warning:
        sys.stdout.flush()
        print(f"ealign: warning: {warning}", file=sys.stderr, flush=True)


def power_warning(store) -> str | None:
    """One line naming the primary comparisons whose minimum detectable change exceeds DETECTABLE (or
    that cannot detect any change); None when every one can, or before `power` has rows."""
    import polars as pl

    try:
        p = store.query("SELECT comparison, n, mde FROM power ORDER BY comparison", read_only=True)
    except Exception:
        return None
    weak = p.filter(pl.col("mde").is_null() | (pl.col("mde") > DETECTABLE))
    if weak.is_empty():
        return None
    named = "; ".join(
        f"{c}: n = {n}, mde = {'none' if m is None else f'{m:.2f}'}" for c, n, m in weak.head(3).iter_rows()
    )
    more = f"; and {len(weak) - 3} more" if len(weak) > 3 else ""
    return (f"this profile cannot detect a {DETECTABLE * 100:.0f}-point change in {len(weak)} of {len(p)} primary "
            f"comparisons at 80% power ({named}{more}); see table power")  # fmt: skip
