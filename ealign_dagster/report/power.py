"""The report's power table: each primary comparison's minimum detectable change beside the change observed."""

from __future__ import annotations

import polars as pl

TITLE = (
    "Power: the smallest change each primary comparison can detect (80% power, two-sided, alpha = Holm's "
    "strictest step 0.05 / m; arcsine normal approximation ignoring the pairing) beside the observed change "
    "(model - base, 95% CI, Holm p within the primary family)"
)
KEYS = ["model_id", "judge", "benchmark"]


def power_beside_observed(power: pl.DataFrame, emergent: pl.DataFrame, safety: pl.DataFrame) -> pl.DataFrame:
    """One row per primary comparison: its MDE next to emergent_alignment's row (a pooled comparison) or
    safety_scores' row (one held-out category on one benchmark) for the same adapter, judge and prompts."""
    if power.is_empty():
        return power
    observed = ["delta", "ci_low", "ci_high", "p_holm"]
    if "reference" in emergent.columns:  # the primary comparisons are against the base
        emergent = emergent.filter(pl.col("reference") == "base")
    e = emergent.select(*KEYS, "category_role", *observed)
    s = safety.select(*KEYS, pl.col("category").alias("categories"), "delta", pl.col("delta_ci_low").alias("ci_low"),
                      pl.col("delta_ci_high").alias("ci_high"), "p_holm")  # fmt: skip
    both = power.join(e, on=[*KEYS, "category_role"], how="left").join(
        s, on=[*KEYS, "categories"], how="left", suffix="_by_category"
    )
    # a by-category comparison's own family is safety_scores' primary family, so its row comes first
    return both.select(
        "comparison", "n", "base_rate", "m", "alpha", "mde_down", "mde_up", "mde",
        *(pl.coalesce(f"{c}_by_category", c).alias(c) for c in observed),
    )  # fmt: skip
