"""Agreement between judges on the same responses: Cohen's kappa with its 95% interval and the raw
agreement with a Wilson interval, pooled and broken down per model, per prompt role (harmful prompts
vs over-refusal sets) and per category within a role."""

from __future__ import annotations

import numpy as np
import polars as pl

from ealign_dagster.core.stats import cohen_kappa, wilson

RESPONSE = ["model_id", "benchmark", "prompt_id"]
ALL = "all"  # a breakdown column's value on a row pooled over it
SCHEMA = {
    "judge_a": pl.String, "judge_b": pl.String, "field": pl.String, "model_id": pl.String, "role": pl.String,
    "category": pl.String, "n": pl.Int64, "agreement": pl.Float64, "agreement_ci_low": pl.Float64,
    "agreement_ci_high": pl.Float64, "rate_a": pl.Float64, "rate_b": pl.Float64, "kappa": pl.Float64,
    "kappa_ci_low": pl.Float64, "kappa_ci_high": pl.Float64, "note": pl.String, "judge_a_version": pl.String,
    "judge_b_version": pl.String, "adapter_id": pl.String, "generation_version": pl.String,
    "eval_version": pl.String,
}  # fmt: skip


def kappa_interval(a, b, names: tuple[str, str] = ("judge_a", "judge_b"), alpha: float = 0.05) -> dict:
    """Cohen's kappa of two binary raters (scikit-learn) with the large-sample interval from the
    Fleiss-Cohen-Everitt (1969) standard error (statsmodels), clipped to [-1, 1]. Where kappa is
    undefined (no items; both raters give one and the same label to every item) it is None, and where
    one rater is constant kappa is 0 whatever the other says, so it has no interval: `note` says why."""
    from scipy.stats import norm
    from sklearn.metrics import confusion_matrix
    from statsmodels.stats.inter_rater import cohens_kappa

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    none = {"kappa": None, "kappa_ci_low": None, "kappa_ci_high": None}
    if len(a) == 0:
        return none | {"note": "no items rated by both"}
    label = lambda x: "refusal" if x[0] else "no refusal"  # noqa: E731
    if len(set(a)) == 1 and set(a) == set(b):
        return none | {"note": f"{names[0]} and {names[1]} give every item the same label ({label(a)}): chance "
                       "agreement is 1, kappa undefined"}  # fmt: skip
    kappa = cohen_kappa(a, b)
    if len(set(a)) == 1 or len(set(b)) == 1:
        name, x = (names[0], a) if len(set(a)) == 1 else (names[1], b)
        return none | {"kappa": kappa, "note": f"{name} gives every item one label ({label(x)}): kappa is 0 "
                       "whatever the other says, no interval"}  # fmt: skip
    var = cohens_kappa(confusion_matrix(a, b, labels=[False, True]))["var_kappa"]
    half = float(norm.ppf(1 - alpha / 2)) * float(np.sqrt(max(var, 0.0)))  # a rounding below 0 at kappa = 1
    return {"kappa": kappa, "kappa_ci_low": max(-1.0, kappa - half), "kappa_ci_high": min(1.0, kappa + half),
            "note": None}  # fmt: skip


def rate_interval(hits: int, n: int) -> tuple[float | None, float | None, float | None]:
    """hits / n with its Wilson 95% interval, the bounds held to either side of the rate (statsmodels'
    bound at 0/n or n/n can miss it by a rounding); all None when n = 0."""
    if n == 0:
        return None, None, None
    lo, hi = wilson(hits, n)
    return hits / n, min(lo, hits / n), max(hi, hits / n)


def _versions(s: pl.Series) -> str | None:
    values = sorted(set(s.drop_nulls()))
    return ",".join(values) if values else None


def _row(both: pl.DataFrame, a: str, b: str, model_id: str, role: str, category: str) -> dict:
    x, y = both[a].to_numpy().astype(bool), both[b].to_numpy().astype(bool)
    n, hits = len(both), int((x == y).sum())
    rate, lo, hi = rate_interval(hits, n)
    one_model = model_id != ALL
    return {
        "judge_a": a, "judge_b": b, "field": "refused", "model_id": model_id, "role": role, "category": category,
        "n": n, "agreement": rate, "agreement_ci_low": lo, "agreement_ci_high": hi,
        "rate_a": float(x.mean()) if n else None,
        "rate_b": float(y.mean()) if n else None, **kappa_interval(x, y, (a, b)),
        "judge_a_version": _versions(both["version_a"]), "judge_b_version": _versions(both["version_b"]),
        "adapter_id": _versions(both["adapter_id"]) if one_model else None,
        "generation_version": _versions(both["generation_version"]) if one_model else None,
    }  # fmt: skip


def _role(judgments: pl.DataFrame) -> pl.Expr:
    """'benign' for an over-refusal set's prompts, else 'eval' (harmful prompts); see safety.scores."""
    from ealign_dagster.safety.scores import over_refusal

    return pl.when(over_refusal(judgments)).then(pl.lit("benign")).otherwise(pl.lit("eval"))


def judge_agreement(judgments: pl.DataFrame, eval_version: str | None = None) -> pl.DataFrame:
    """For every pair of judges over the same responses, the refusal verdict's agreement and Cohen's
    kappa: pooled (model_id, role, category all 'all'), per model, per role, and per role x category."""
    j = judgments.with_columns(role=_role(judgments))
    for c in ("adapter_id", "generation_version", "judge_version", "category"):
        if c not in j.columns:
            j = j.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    judges = sorted(j["judge"].unique())
    keep = ["role", "category", "adapter_id", "generation_version"]
    rows = []
    for i, a in enumerate(judges):
        left = j.filter(pl.col("judge") == a).select(*RESPONSE, *keep, pl.col("refused").alias(a),
                                                     version_a="judge_version")  # fmt: skip
        for b in judges[i + 1 :]:
            right = j.filter(pl.col("judge") == b).select(*RESPONSE, pl.col("refused").alias(b),
                                                          version_b="judge_version")  # fmt: skip
            both = left.join(right, on=RESPONSE).drop_nulls([a, b]).sort(RESPONSE)
            rows.append(_row(both, a, b, ALL, ALL, ALL))
            for (m,), part in both.group_by("model_id", maintain_order=True):
                rows.append(_row(part, a, b, m, ALL, ALL))
            for (r,), part in both.sort("role").group_by("role", maintain_order=True):
                rows.append(_row(part, a, b, ALL, r, ALL))
            for (r, c), part in both.sort("role", "category").group_by("role", "category", maintain_order=True):
                rows.append(_row(part, a, b, ALL, r, c if c is not None else "unknown"))
    return pl.DataFrame(rows, schema=SCHEMA).with_columns(eval_version=pl.lit(eval_version, dtype=pl.String))
