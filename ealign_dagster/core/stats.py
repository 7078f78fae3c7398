"""Statistics for the evaluation: binomial rates with Wilson intervals, paired exact McNemar tests,
Tango's score interval for paired differences, Holm correction, Cohen's kappa and bootstrap intervals.
Thin wrappers over statsmodels, scipy and scikit-learn where they have the method; Tango's interval
(in neither) is its closed-form constrained MLE inverted with scipy's root finder, checked in the
tests against a numerical maximisation of the likelihood."""

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


def paired_diff_ci(before: Sequence[bool], after: Sequence[bool], alpha: float = 0.05) -> tuple[float, float]:
    """Tango's (1998) score interval for the difference of paired proportions, after minus before:
    the set of differences a score test does not reject. Unlike the percentile bootstrap it keeps its
    coverage at small n and never collapses to a point when there are no discordant pairs."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    b = np.asarray(before, dtype=bool)
    a = np.asarray(after, dtype=bool)
    if b.shape != a.shape:
        raise ValueError(f"paired outcomes differ in length: {b.shape} vs {a.shape}")
    n = len(a)
    if n == 0:
        return math.nan, math.nan
    up, down = int(np.sum(a & ~b)), int(np.sum(b & ~a))  # discordant pairs each way
    z = float(norm.ppf(1 - alpha / 2))

    def score(delta: float) -> float:
        resid = up - down - n * delta
        if resid == 0:
            return 0.0
        w = -up - down + (2 * n - up + down) * delta
        q = (math.sqrt(w * w + 8 * n * down * delta * (1 - delta)) - w) / (4 * n)  # constrained MLE of p(down)
        var = n * (2 * q + delta - delta * delta)
        return resid / math.sqrt(var) if var > 0 else math.copysign(math.inf, resid)

    est, eps = (up - down) / n, 1e-12
    lo = -1.0 if est <= -1 or score(-1 + eps) <= z else brentq(lambda d: score(d) - z, -1 + eps, est, xtol=1e-12)
    hi = 1.0 if est >= 1 or score(1 - eps) >= -z else brentq(lambda d: score(d) + z, est, 1 - eps, xtol=1e-12)
    return float(lo), float(hi)


def sign_test(d: Sequence[float]) -> float:
    """Two-sided sign test of paired differences (ties dropped; scipy binomtest): on binary outcomes
    exactly McNemar's exact test. 1.0 when every pair ties."""
    from scipy.stats import binomtest

    d = np.asarray(d, dtype=float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    return 1.0 if pos + neg == 0 else float(binomtest(pos, pos + neg, 0.5).pvalue)


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
    """Cohen's kappa between two raters, as scikit-learn computes it; nan when it is undefined (no
    items, or chance agreement is 1 because both raters give one and the same label to every item)."""
    from sklearn.metrics import cohen_kappa_score

    a, b = list(a), list(b)
    if not a or (len(set(a)) == 1 and set(a) == set(b)):
        return math.nan
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
    separately, so passing each stratum as its own sample gives a stratified bootstrap (items within
    subscale x keying); paired samples resample the same indices together. A sample with one value
    resamples to itself, so it enters as a constant; a statistic that does not vary gives a
    zero-width interval."""
    from scipy.stats import bootstrap

    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(len(d) == 0 for d in data):
        return math.nan, math.nan
    point = float(statistic(*data))
    varying = [i for i, d in enumerate(data) if len(d) > 1 and not np.all(d == d[0])]
    if not varying:
        return point, point
    if paired:
        varying = list(range(len(data)))

    def resampled(*x, axis=-1):
        full = list(data)
        for i, xi in zip(varying, x):
            full[i] = xi
        batch = x[0].shape[:-1]  # constants broadcast against the resampled batch
        full = [f if i in varying else np.broadcast_to(f, batch + f.shape) for i, f in enumerate(full)]
        return statistic(*full, axis=axis)

    res = bootstrap(
        tuple(data[i] for i in varying),
        resampled,
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
