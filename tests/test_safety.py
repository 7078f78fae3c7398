"""Safety statistics on fixed judgments: rates, intervals, McNemar, Holm families, emergent alignment,
comparability checks, judge agreement. Each number is checked against an independent computation."""

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.multitest import multipletests

from ealign_dagster.core.schemas import load_taxonomy
from ealign_dagster.judges.agreement import judge_agreement
from ealign_dagster.safety import scores as ss
from tests.test_stats import tango_by_likelihood

CATS = ["harassment_bullying"] * 4 + ["chemical_biological"] * 4
BASE_REF = [False, False, False, True, False, False, True, True]  # base refuses 1/4 and 2/4
AD_REF = [True, True, True, True, True, False, True, True]  # adapter refuses 4/4 and 3/4


def _judgments(judge="prefix"):
    """base + one narrow_harassment adapter; 4 harassment (trained), 4 chem/bio (held-out), 4 benign."""
    rows = []
    for model, refused, benign in (("base", BASE_REF, [False] * 4), ("a1", AD_REF, [True, True, False, False])):
        for i, (c, r) in enumerate(zip(CATS, refused)):
            rows.append({"model_id": model, "benchmark": "harmbench_standard", "prompt_id": f"h{i}", "category": c,
                         "judge": judge, "judge_version": f"{judge}-v1", "refused": r, "harmful": None})  # fmt: skip
        for i, r in enumerate(benign):
            rows.append({"model_id": model, "benchmark": "benign", "prompt_id": f"b{i}", "category": "illegal",
                         "judge": judge, "judge_version": f"{judge}-v1", "refused": r, "harmful": None})  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"harmful": pl.Boolean})


MODELS = pl.DataFrame(
    [{"model_id": "base", "constitution": None, "scope": None},
     {"model_id": "a1", "constitution": "virtue", "scope": "narrow_harassment"}],
    schema={"model_id": pl.String, "constitution": pl.String, "scope": pl.String},
)  # fmt: skip


def test_safety_rows_rates_intervals_and_tests():
    df = ss.safety_rows(_judgments(), MODELS, load_taxonomy(), "prefix")
    row = lambda m, b, c: df.filter(model_id=m, benchmark=b, category=c).row(0, named=True)  # noqa: E731
    r = row("a1", "harmbench_standard", "harassment_bullying")
    assert r["metric"] == "non_refusal_rate" and r["category_role"] == "trained" and r["n"] == 4
    assert r["events"] == 0 and r["rate"] == 0 and r["delta"] == -0.75
    assert r["p_value"] == pytest.approx(binomtest(0, 3).pvalue)  # 3 discordant pairs, all one way
    assert (r["delta_ci_low"], r["delta_ci_high"]) == pytest.approx(
        tango_by_likelihood([1, 1, 1, 0], [0, 0, 0, 0]), abs=1e-6)  # fmt: skip
    b = row("base", "harmbench_standard", "harassment_bullying")
    assert b["rate"] == 0.75 and b["p_value"] is None and b["delta"] is None
    h = row("a1", "harmbench_standard", "chemical_biological")
    assert h["held_out"] and h["category_role"] == "held_out"
    o = row("a1", "benign", "all")
    assert o["metric"] == "refusal_rate" and o["rate"] == 0.5


def test_benign_lookalikes_are_neither_trained_nor_held_out():
    df = ss.safety_rows(_judgments(), MODELS, load_taxonomy(), "prefix").filter(benchmark="benign")
    assert df["category_role"].null_count() == len(df) and df["held_out"].null_count() == len(df)


def test_primary_family_is_corrected_alone_and_the_rest_per_judge():
    j = pl.concat([_judgments("prefix"), _judgments("embedding")])
    df = ss.safety_rows(j, MODELS, load_taxonomy(), "embedding", "held_out_by_category")
    primary = df.filter(family="primary")
    assert primary.select("judge", "category").rows() == [("embedding", "chemical_biological")]
    assert set(ss.safety_rows(j, MODELS, load_taxonomy(), "embedding")["family"]) == {"exploratory"}
    for judge in ("prefix", "embedding"):
        fam = df.filter(family="exploratory", judge=judge).drop_nulls("p_value")
        assert fam["p_holm"].to_numpy() == pytest.approx(multipletests(fam["p_value"].to_numpy(), method="holm")[1])
    assert primary["p_holm"][0] == pytest.approx(primary["p_value"][0])  # a family of one


def test_emergent_alignment_rows_score_interval_and_family():
    df = ss.emergent_rows(_judgments(), MODELS, load_taxonomy(), "prefix")
    row = {
        r["category_role"]: r for r in df.filter(pl.col("benchmark").is_in([ss.POOLED, "benign"])).iter_rows(named=True)
    }
    t = row["trained"]
    assert t["base_rate"] == 0.75 and t["model_rate"] == 0 and t["delta"] == -0.75
    assert row["held_out"]["delta"] == pytest.approx(0.25 - 0.5)
    assert row["over_refusal"]["delta"] == 0.5 and row["over_refusal"]["metric"] == "refusal_rate"
    before, after = [not r for r in BASE_REF[4:]], [not r for r in AD_REF[4:]]
    assert (row["held_out"]["ci_low"], row["held_out"]["ci_high"]) == pytest.approx(
        tango_by_likelihood(before, after), abs=1e-6)  # fmt: skip
    assert {r: row[r]["family"] for r in row} == {r: "primary" if r == "held_out" else "exploratory" for r in row}
    assert row["held_out"]["p_holm"] == row["held_out"]["p_value"]  # a family of one
    expl = df.filter(family="exploratory")
    assert expl["p_holm"].to_numpy() == pytest.approx(multipletests(expl["p_value"].to_numpy(), method="holm")[1])


def test_emergent_alignment_per_benchmark_next_to_the_pooled_view():
    """Two harmful benchmarks: the pooled row counts both; each benchmark also has its own rows,
    exploratory (before: all harmful benchmarks pooled, none named)."""
    j = _judgments()
    j = pl.concat([j, j.filter(pl.col("benchmark") != "benign").with_columns(benchmark=pl.lit("mine"))])
    df = ss.emergent_rows(j, MODELS, load_taxonomy(), "prefix").filter(category_role="held_out")
    by = {r["benchmark"]: r for r in df.iter_rows(named=True)}
    assert set(by) == {ss.POOLED, "harmbench_standard", "mine"}
    assert by[ss.POOLED]["n"] == by["mine"]["n"] + by["harmbench_standard"]["n"] == 8
    assert by["mine"]["delta"] == by["harmbench_standard"]["delta"] == by[ss.POOLED]["delta"]
    assert {b: r["family"] for b, r in by.items()} == {ss.POOLED: "primary", "harmbench_standard": "exploratory",
                                                       "mine": "exploratory"}  # fmt: skip


def test_score_interval_keeps_width_where_the_bootstrap_collapses():
    """No discordant pairs in 36: the percentile bootstrap gives [0, 0]; Tango's interval does not."""
    lo, hi = ss.paired_diff_ci([False] * 36, [False] * 36)
    assert lo < -0.05 and hi > 0.05
    assert (lo, hi) == pytest.approx(tango_by_likelihood([0] * 36, [0] * 36), abs=1e-6)


@pytest.mark.parametrize("mutate, message", [
    (lambda j: j.with_columns(judge_version=pl.when(pl.col("model_id") == "a1").then(pl.lit("prefix-v2"))
                              .otherwise("judge_version")), "mixes versions"),
    (lambda j: j.filter(~((pl.col("model_id") == "a1") & (pl.col("prompt_id") == "h0"))), "different"),
    (lambda j: pl.concat([j, j.head(1)]), "2 times"),
])  # fmt: skip
def test_incomparable_judgments_fail_with_a_clear_message(mutate, message):
    """Before: a missing prompt silently shrank the paired n; mixed judge versions were recorded as
    the first row's."""
    ss.check_comparable(_judgments(), ["e1"])
    with pytest.raises(ValueError, match=message):
        ss.check_comparable(mutate(_judgments()), ["e1"])
    with pytest.raises(ValueError, match="mixes evaluation sets"):
        ss.check_comparable(_judgments(), ["e1", "e2"])


def test_judge_agreement_kappa():
    j = _judgments()
    flipped = pl.Series([i < 2 for i in range(len(j))])
    other = j.with_columns(judge=pl.lit("embedding"), refused=pl.col("refused") ^ flipped)
    agree = judge_agreement(pl.concat([j, other])).row(0, named=True)
    assert agree["n"] == len(j) and agree["agreement"] == pytest.approx(1 - 2 / len(j))
    x, y = j["refused"].to_list(), other["refused"].to_list()
    assert agree["kappa"] == pytest.approx(cohen_kappa_score(x, y))
    po = np.mean(np.array(x) == np.array(y))
    pe = np.mean(x) * np.mean(y) + (1 - np.mean(x)) * (1 - np.mean(y))
    assert agree["kappa"] == pytest.approx((po - pe) / (1 - pe))  # by hand


def test_report_error_bars_clip_the_rounding_negatives_of_a_bound():
    """A Wilson bound at 0/n can sit 1e-17 above the rate; matplotlib refuses the negative error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ealign_dagster.report.render import _err

    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="negative"):
        ax.errorbar(0.0, 0, xerr=[[0.0 - 1e-17], [0.3]])
    ax.errorbar(0.0, 0, xerr=_err(0.0, 1e-17, 0.3))
    plt.close(fig)
