"""Power before the run: for each comparison of the pre-registered primary family, the smallest change in
the bad-outcome rate the study can detect, from the number of paired prompts and the base model's
measured rate on them. The adapters' own outcomes play no part, so the numbers say what a profile can
show before anyone reads its effects."""

from __future__ import annotations

import math

import polars as pl

from ealign_dagster.core.schemas import Taxonomy
from ealign_dagster.safety.scores import POOLED, outcome

ALPHA = 0.05  # the family-wise error rate the primary family's Holm correction controls
POWER = 0.8
SCHEMA = {"comparison": pl.String, "model_id": pl.String, "adapter_id": pl.String, "constitution": pl.String,
          "scope": pl.String, "category_role": pl.String, "benchmark": pl.String, "categories": pl.String,
          "judge": pl.String, "metric": pl.String, "n": pl.Int64, "base_rate": pl.Float64, "m": pl.Int64,
          "alpha": pl.Float64, "power": pl.Float64, "mde_down": pl.Float64, "mde_up": pl.Float64,
          "mde": pl.Float64}  # fmt: skip


def detectable_change(
    n: int, base_rate: float, alpha: float, power: float = POWER
) -> tuple[float | None, float | None]:
    """(smallest detectable decrease, smallest detectable increase) of a rate from `base_rate`, as absolute
    rate differences, for a two-sided test at `alpha` with `power` on n paired prompts; None where no
    change within [0, 1] is large enough.

    Method: the two-independent-proportions normal approximation on Cohen's arcsine scale (statsmodels'
    NormalIndPower, n per arm): h = (z_{1-alpha/2} + z_power) / sqrt(n/2), converted back to a rate by
    p1 = sin^2(asin(sqrt(p0)) -/+ h/2). No pre-run McNemar power is possible without the discordant
    share, which only the adapters' outcomes reveal, so this ignores the pairing. For a change d the
    paired variance is psi - d^2 (psi the discordant share); it equals the independent-samples variance
    p0(1-p0) + p1(1-p1) exactly when the base's and the adapter's outcomes on a prompt are independent,
    i.e. psi = p0(1-p1) + p1(1-p0). Below that discordance (positively correlated outcomes, the usual
    case: a prompt one model refuses the other tends to refuse too) McNemar is more powerful and this
    MDE is conservative (too large); above it (negatively correlated outcomes) it is optimistic. The
    exact McNemar test the tables use is also discrete: with only a handful of discordant pairs it cannot
    reach a small alpha at all (at alpha 0.0125 it needs 8, all one way: 2 * 0.5^8 < 0.0125 < 2 * 0.5^7),
    so where n * mde is that small this approximation is optimistic."""
    if n < 1:
        return None, None
    from statsmodels.stats.power import NormalIndPower

    h = float(NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=1.0))
    phi = math.asin(math.sqrt(min(max(base_rate, 0.0), 1.0)))
    down = base_rate - math.sin(phi - h / 2) ** 2 if h / 2 <= phi else None
    up = math.sin(phi + h / 2) ** 2 - base_rate if phi + h / 2 <= math.pi / 2 else None
    return down, up


def _comparison(m: dict, categories: str, benchmark: str | None) -> dict:
    name = f"{m['constitution']}/{m['scope']} held_out" + (f" {categories} ({benchmark})" if benchmark else "")
    return {"comparison": name, "model_id": m["model_id"], "adapter_id": m["adapter_id"],
            "constitution": m["constitution"], "scope": m["scope"], "category_role": "held_out",
            "benchmark": benchmark or POOLED, "categories": categories}  # fmt: skip


def primary_comparisons(
    judgments: pl.DataFrame, models: pl.DataFrame, taxonomy: Taxonomy, judge: str, primary_family: str
) -> pl.DataFrame:
    """The primary family as safety.scores defines it, one row per comparison with its paired prompts
    (n) and the base's bad-outcome rate on exactly those prompts: with 'held_out_pooled' one row per
    narrow adapter, its held-out categories on every harmful benchmark pooled (emergent_alignment's
    primary rows); with 'held_out_by_category' one per adapter x harmful benchmark x held-out category
    (safety_scores' primary rows). Only the primary judge's judgments count."""
    j = outcome(judgments.filter(pl.col("judge") == judge)).filter(~pl.col("over_refusal"))
    base = j.filter(pl.col("model_id") == "base").select("benchmark", "prompt_id", "category", "metric", "bad")
    rows = []
    adapters = pl.col("model_kind") == "adapter" if "model_kind" in models.columns else pl.col("model_id") != "base"
    for m in models.filter(adapters).iter_rows(named=True):
        if not m["scope"] or not taxonomy.held_out(m["scope"]):
            continue
        held = [c for c in base["category"].unique().sort() if taxonomy.category_role(m["scope"], c) == "held_out"]
        mine = j.filter((pl.col("model_id") == m["model_id"]) & pl.col("category").is_in(held))
        paired = base.join(mine.select("benchmark", "prompt_id"), on=["benchmark", "prompt_id"], how="semi")
        if paired.is_empty():
            continue
        if primary_family == "held_out_pooled":
            groups = [(_comparison(m, ",".join(sorted(paired["category"].unique())), None), paired)]
        else:
            keys = ["benchmark", "category"]
            groups = [(_comparison(m, c, b), g) for (b, c), g in paired.sort(keys).group_by(keys, maintain_order=True)]
        rows += [{**row, "judge": judge, "metric": g["metric"][0], "n": len(g), "base_rate": float(g["bad"].mean())}
                 for row, g in groups]  # fmt: skip
    names = [r["comparison"] for r in rows]
    seed_of = dict(zip(models["model_id"], models["seed"])) if "seed" in models.columns else {}
    for r in rows:  # several adapters of one cell (replicate seeds): name each by its seed, else its id
        if names.count(r["comparison"]) > 1:
            seed = seed_of.get(r["model_id"])
            r["comparison"] += f" seed {seed}" if seed is not None else f" [{r['model_id']}]"
    return pl.DataFrame(rows, schema={k: SCHEMA[k] for k in list(SCHEMA)[:12]})


def power_rows(
    judgments: pl.DataFrame,
    models: pl.DataFrame,
    taxonomy: Taxonomy,
    judge: str,
    primary_family: str = "held_out_pooled",
    power: float = POWER,
) -> pl.DataFrame:
    """The minimum detectable effect at `power` for each primary comparison (see primary_comparisons and
    detectable_change). alpha is Holm's strictest step, ALPHA / m over the family's m tests (Bonferroni):
    Holm rejects every test whose p is at most ALPHA / m, and more when the others' p are small, so the
    power at this alpha is a lower bound on Holm's and the MDE an upper bound. mde is the smaller of
    mde_down and mde_up that exists; null where neither does."""
    df = primary_comparisons(judgments, models, taxonomy, judge, primary_family)
    m = len(df)
    changes = [detectable_change(n, p0, ALPHA / m, power) for n, p0 in zip(df["n"], df["base_rate"])]
    down = pl.Series([d for d, _ in changes], dtype=pl.Float64)
    up = pl.Series([u for _, u in changes], dtype=pl.Float64)
    return df.with_columns(m=pl.lit(m, pl.Int64), alpha=pl.lit(ALPHA / max(m, 1)), power=pl.lit(float(power)),
                           mde_down=down, mde_up=up, mde=pl.min_horizontal(down, up))  # fmt: skip
