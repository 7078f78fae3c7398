"""Statistics for the evaluation: binomial rates with Wilson intervals, paired exact McNemar tests,
Holm correction, Cohen's kappa and bootstrap intervals. Thin wrappers over statsmodels, scipy and
scikit-learn so every number in the result tables comes from a well-tested implementation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def mcnemar_exact(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (the same prompts, two models):
    a binomial test on the discordant pairs. 1.0 when there are none."""
    b = np.asarray(before, dtype=bool)
    a = np.asarray(after, dtype=bool)
    if b.shape != a.shape:
        raise ValueError(f"paired outcomes differ in length: {b.shape} vs {a.shape}")
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[int(np.sum(b & a)), int(np.sum(b & ~a))], [int(np.sum(~b & a)), int(np.sum(~b & ~a))]]
    if table[0][1] + table[1][0] == 0:
        return 1.0
    return float(mcnemar(table, exact=True).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values over one family; NaNs stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa between two raters; nan when either rater gives one label only to every item
    and they differ (kappa undefined), 1.0 when both are constant and identical."""
    from sklearn.metrics import cohen_kappa_score

    a, b = list(a), list(b)
    if not a:
        return math.nan
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a == b else math.nan
    return float(cohen_kappa_score(a, b))


def bootstrap_ci(
    samples: Sequence[Sequence[float]],
    statistic: Callable,
    n_resamples: int = 1000,
    seed: int = 0,
    paired: bool = False,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(*samples)`. Independent samples are resampled
    separately (items within each subscale); paired samples resample the same indices together.
    A statistic that does not vary gives a zero-width interval."""
    from scipy.stats import bootstrap

    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(len(d) == 0 for d in data):
        return math.nan, math.nan
    point = float(statistic(*data))
    if all(len(d) < 2 or np.all(d == d[0]) for d in data):
        return point, point
    res = bootstrap(
        data,
        lambda *x, axis=-1: statistic(*x, axis=axis),
        n_resamples=n_resamples,
        paired=paired,
        vectorized=True,
        method="percentile",
        confidence_level=level,
        random_state=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    if np.isnan(lo) or np.isnan(hi):  # degenerate resampling distribution
        return point, point
    return float(lo), float(hi)


def mean_diff(model, base, axis=-1):
    """Paired difference of means: model minus base."""
    return np.mean(model, axis=axis) - np.mean(base, axis=axis)
