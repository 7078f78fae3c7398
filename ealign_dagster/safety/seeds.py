"""Across replicate seeds (study.seeds): each cell's per-seed changes summarised (mean, spread) and one
pooled test per cell, so that a claim rests on every replicate rather than on the luckiest one.

Pooling: per prompt, the model's bad-outcome indicator is averaged over the cell's seeds, and so is the
reference's (the base's one outcome, or the no-constitution control's over the same seeds); the pooled
change is the mean over prompts of model minus reference. The pooled test is the two-sided sign test
over prompts (scipy binomtest on the prompts where the model is worse vs better), which with one seed is
exactly McNemar's exact test; its interval is Tango's with one seed and a paired percentile bootstrap
over prompts with more."""

from __future__ import annotations

import numpy as np
import polars as pl

from ealign_dagster.core.stats import bootstrap_ci, holm, mean_diff, paired_diff_ci, sign_test
from ealign_dagster.safety.scores import NO_CONSTITUTION, POOLED, outcome

POOLING = ("per-prompt mean over seeds minus the reference's; sign test over prompts (exact McNemar with one "
           "seed); CI Tango (one seed) or paired bootstrap over prompts")  # fmt: skip
CELL = ["constitution", "scope", "model_kind", "reference", "category_role", "benchmark"]


def _per_prompt(j: pl.DataFrame, ids: list[str], row: dict) -> pl.DataFrame:
    """benchmark, prompt_id and the mean bad outcome over the models `ids` on this row's prompts."""
    cats = row["categories"].split(",")
    sel = pl.col("model_id").is_in(ids) & pl.col("category").is_in(cats)
    sel &= pl.col("over_refusal") if row["category_role"] == "over_refusal" else ~pl.col("over_refusal")
    if row["benchmark"] != POOLED:
        sel &= pl.col("benchmark") == row["benchmark"]
    return j.filter(sel).group_by("benchmark", "prompt_id").agg(bad=pl.col("bad").cast(pl.Float64).mean())


def seed_rows(
    judgments: pl.DataFrame, models: pl.DataFrame, emergent: pl.DataFrame, judge: str, n_resamples: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:  # fmt: skip
    """One row per cell (constitution or control arm x scope x reference x category role x benchmark)
    of emergent_alignment: seeds, the per-seed deltas' mean, SD (n - 1; null with one seed), min and
    max, and the pooled change with its interval and test (see the module), Holm within the family."""
    if emergent.is_empty():
        return pl.DataFrame()
    j = outcome(judgments.filter(pl.col("judge") == judge))
    rows = []
    for _, g in emergent.sort("seed").group_by(CELL, maintain_order=True):
        first = g.row(0, named=True)
        seeds = g["seed"].to_list()
        if first["reference"] == NO_CONSTITUTION:
            ctrl = models.filter((pl.col("constitution") == NO_CONSTITUTION) & (pl.col("scope") == first["scope"])
                                 & pl.col("seed").is_in(seeds))  # fmt: skip
            ref_ids = ctrl["model_id"].to_list()
        else:
            ref_ids = ["base"]
        pm = _per_prompt(j, g["model_id"].to_list(), first).join(
            _per_prompt(j, ref_ids, first).rename({"bad": "ref"}), on=["benchmark", "prompt_id"]
        )
        after, before = pm["bad"].to_numpy(), pm["ref"].to_numpy()
        d = after - before
        if len(seeds) == 1 and np.isin(np.r_[after, before], (0.0, 1.0)).all():  # one seed, one sample
            lo, hi = paired_diff_ci(before.astype(bool), after.astype(bool))
        else:
            lo, hi = bootstrap_ci([after, before], mean_diff, n_resamples, seed, paired=True)
        deltas = g["delta"].to_numpy()
        rows.append({**{k: first[k] for k in CELL}, "judge": judge, "metric": first["metric"], "family": first["family"],
                     "n_seeds": len(seeds), "seeds": ",".join(map(str, seeds)), "n": len(pm),
                     "mean_delta": float(deltas.mean()), "sd_delta": float(deltas.std(ddof=1)) if len(deltas) > 1 else None,
                     "min_delta": float(deltas.min()), "max_delta": float(deltas.max()),
                     "pooled_delta": float(d.mean()) if len(d) else None, "pooled_ci_low": lo, "pooled_ci_high": hi,
                     "pooled_p": sign_test(d), "pooling": POOLING,
                     "model_ids": ",".join(g["model_id"].to_list())})  # fmt: skip
    df = pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.col("sd_delta", "pooled_delta").cast(pl.Float64))
    parts = [g.with_columns(pooled_p_holm=pl.Series(holm(g["pooled_p"].to_numpy()), dtype=pl.Float64))
             for _, g in df.with_row_index("_i").group_by("family", maintain_order=True)]  # fmt: skip
    return pl.concat(parts).sort("_i").drop("_i")
