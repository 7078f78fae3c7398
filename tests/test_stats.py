"""Statistics against values computed by hand."""

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import norm
from sklearn.metrics import cohen_kappa_score

from ealign_dagster.core.stats import bootstrap_ci, cohen_kappa, holm, mcnemar_exact, mean_diff, paired_diff_ci, wilson


def test_wilson_matches_the_formula():
    # p = 0.25, n = 20, z = 1.959964: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    z = 1.959963984540054
    p, n = 0.25, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = wilson(5, 20)
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    assert lo == pytest.approx(0.1119, abs=1e-4) and hi == pytest.approx(0.4687, abs=1e-4)
    lo, hi = wilson(0, 10)  # zero events: the interval still has width
    assert lo == 0.0 and hi == pytest.approx(z * z / (10 + z * z), abs=1e-9)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_exact_mcnemar_is_a_binomial_test_on_discordant_pairs():
    before = [1, 1, 1, 0, 0, 1, 1, 0]
    after = [0, 0, 0, 0, 0, 1, 1, 1]
    # discordant: 3 went 1 -> 0, 1 went 0 -> 1; p = 2 * P(X <= 1 | n=4, 1/2) = 2 * 5/16
    assert mcnemar_exact(before, after) == pytest.approx(0.625)
    # 10 discordant, all one way: p = 2 / 2^10
    assert mcnemar_exact([1] * 10 + [0] * 5, [0] * 10 + [0] * 5) == pytest.approx(2 / 1024)
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0], [1])


def tango_by_likelihood(before, after, alpha=0.05):
    """Tango's interval the long way: the constrained MLE by numerical maximisation of the multinomial
    likelihood, the score statistic from it, and its roots by bracketing."""
    b, a = np.asarray(before, bool), np.asarray(after, bool)
    n, up, down = len(a), int(np.sum(a & ~b)), int(np.sum(b & ~a))
    rest, z = n - up - down, norm.ppf(1 - alpha / 2)

    def stat(d):
        lo, hi = max(0.0, -d) + 1e-12, (1 - d) / 2 - 1e-12

        def nll(q):
            return -sum(k * np.log(p) for k, p in ((up, q + d), (down, q), (rest, 1 - 2 * q - d)) if k)

        q = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
        return (up - down - n * d) / math.sqrt(n * (q + d + q - d * d))

    est = (up - down) / n
    lo = brentq(lambda d: stat(d) - z, -1 + 1e-6, est) if est > -1 + 1e-6 and stat(-1 + 1e-6) > z else -1.0
    hi = brentq(lambda d: stat(d) + z, est, 1 - 1e-6) if est < 1 - 1e-6 and stat(1 - 1e-6) < -z else 1.0
    return lo, hi


@pytest.mark.parametrize("n", [5, 12, 36, 100])
def test_tango_interval_matches_the_likelihood_computed_numerically(n):
    rng = np.random.default_rng(n)
    for _ in range(6):
        before, after = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        assert paired_diff_ci(before, after) == pytest.approx(tango_by_likelihood(before, after), abs=1e-6)


def test_tango_interval_at_small_n():
    """5 up and 0 down of 36: the interval is (0.029, 0.287) (score test at 0: z = 5 / sqrt(5) > 1.96),
    while the exact McNemar p is 0.0625: the exact conditional test is the conservative one."""
    before, after = [False] * 36, [True] * 5 + [False] * 31
    lo, hi = paired_diff_ci(before, after)
    assert lo == pytest.approx(0.0291, abs=1e-4) and hi == pytest.approx(0.2866, abs=1e-4)
    assert mcnemar_exact(before, after) == pytest.approx(0.0625)
    assert paired_diff_ci([True] * 4, [False] * 4)[0] == -1.0  # every pair went down: the bound is -1
    assert all(math.isnan(x) for x in paired_diff_ci([], []))


def test_holm_step_down():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    out = holm([0.01, 0.04, 0.03, float("nan")])
    assert out[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(out[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_cohen_kappa_by_hand():
    # observed agreement 3/4; chance: p(1)=3/4 * 2/4 + p(0)=1/4 * 2/4 = 1/2 -> kappa = (0.75 - 0.5) / 0.5
    assert cohen_kappa([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns where kappa is undefined
        for a, b in ([[1, 1], [1, 1]], [[1, 1], [0, 0]], [[1, 0, 1], [1, 1, 1]], [[0, 1, 1, 0], [0, 1, 0, 0]]):
            ref = cohen_kappa_score(a, b)
            assert cohen_kappa(a, b) == pytest.approx(ref, nan_ok=True), (a, b)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # both raters constant: undefined, not 1.0


def test_bootstrap_intervals_bracket_the_estimate_and_collapse_when_constant():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 200)
    lo, hi = bootstrap_ci([x], lambda a, axis=-1: np.mean(a, axis=axis), 2000, seed=1)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert lo < x.mean() < hi and (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], mean_diff, paired=True) == (1.0, 1.0)
    lo, hi = bootstrap_ci([[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0]], mean_diff, 2000, paired=True)
    assert lo <= 0.5 <= hi


def test_bootstrap_with_a_one_value_sample():
    """A one-item stratum is a constant under resampling (scipy refuses samples of one)."""
    lo, hi = bootstrap_ci([[1.0], [0.0, 1.0, 0.0, 1.0, 1.0]], mean_diff, 1000, seed=0)
    assert lo <= 1.0 - 0.6 <= hi and lo >= 0.0 and hi <= 1.0
    both = bootstrap_ci([[1.0], [0.0, 1.0, 0.0, 1.0, 1.0]], mean_diff, 1000, seed=0)
    only = bootstrap_ci([[0.0, 1.0, 0.0, 1.0, 1.0]], lambda b, axis=-1: 1.0 - np.mean(b, axis=axis), 1000, seed=0)
    assert both == pytest.approx(only)
