"""Judge evidence: validation metrics with their intervals and agreement (Cohen's kappa) per model and
category, each checked against an independent computation (hand-counted confusion tables, the
Fleiss-Cohen-Everitt variance written out, scikit-learn and statsmodels called directly, a plain
numpy bootstrap)."""

import math

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from statsmodels.stats.proportion import proportion_confint

from ealign_dagster.judges.agreement import judge_agreement, kappa_interval
from ealign_dagster.judges.validation import SCHEMA, classification_metrics, validate_judges, validation_rows

# 12 labelled examples: y = human refusal, flagged = the judge's verdict, score = its refusal score
Y = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
FLAGGED = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
SCORE = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.4, 0.3, 0.75, 0.4, 0.2, 0.1, 0.1])


def fce_interval(a, b, z=1.959963984540054):
    """Cohen's kappa and its large-sample 95% interval, Fleiss, Cohen & Everitt (1969), written out."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = len(a)
    p = np.array([[np.mean(~a & ~b), np.mean(~a & b)], [np.mean(a & ~b), np.mean(a & b)]])
    row, col = p.sum(1), p.sum(0)
    po, pe = np.trace(p), float(row @ col)
    k = (po - pe) / (1 - pe)
    diag = sum(p[i, i] * (1 - (row[i] + col[i]) * (1 - k)) ** 2 for i in range(2))
    off = (1 - k) ** 2 * sum(p[i, j] * (col[i] + row[j]) ** 2 for i in range(2) for j in range(2) if i != j)
    se = math.sqrt((diag + off - (k - pe * (1 - k)) ** 2) / (n * (1 - pe) ** 2))
    return k, max(-1, k - z * se), min(1, k + z * se)


def f1_by_hand(y, flagged):
    tp, fp, fn = np.sum(y & flagged), np.sum(~y & flagged), np.sum(y & ~flagged)
    return 2 * tp / (2 * tp + fp + fn)


def auc_by_hand(y, score):
    """The share of (refusal, non-refusal) pairs the score orders right, ties counting half."""
    d = score[y][:, None] - score[~y][None, :]
    return np.mean(d > 0) + 0.5 * np.mean(d == 0)


def numpy_stratified_bootstrap(metric, y, values, n=4000, seed=1):
    """Percentile 95% interval, refusals and non-refusals resampled separately, by a plain loop."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    stats = []
    for _ in range(n):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        stats.append(metric(y[idx], values[idx]))
    return np.percentile(stats, [2.5, 97.5])


def test_validation_metrics_match_hand_counts_and_the_libraries():
    m = classification_metrics(Y, FLAGGED, SCORE, n_resamples=2000, seed=0)
    # hand-counted confusion table: refusals flagged 5 of 7, non-refusals flagged 1 of 5
    assert (m["tp"], m["fn"], m["fp"], m["tn"], m["n"], m["positives"]) == (5, 2, 1, 4, 12, 7)
    assert m["accuracy"] == pytest.approx(9 / 12) == accuracy_score(Y, FLAGGED)
    assert m["precision"] == pytest.approx(5 / 6) == precision_score(Y, FLAGGED)
    assert m["recall"] == pytest.approx(5 / 7) == recall_score(Y, FLAGGED)
    assert m["fpr"] == pytest.approx(1 / 5) == 1 - recall_score(~Y, ~FLAGGED)
    for name, (hits, total) in {"accuracy": (9, 12), "precision": (5, 6), "recall": (5, 7), "fpr": (1, 5)}.items():
        lo, hi = proportion_confint(hits, total, alpha=0.05, method="wilson")
        assert (m[f"{name}_ci_low"], m[f"{name}_ci_high"]) == pytest.approx((lo, hi)), name
    assert m["f1"] == pytest.approx(f1_score(Y, FLAGGED)) == pytest.approx(2 * 5 / (2 * 5 + 1 + 2))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y, SCORE))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(Y, FLAGGED))
    assert (m["kappa"], m["kappa_ci_low"], m["kappa_ci_high"]) == pytest.approx(fce_interval(Y, FLAGGED))
    assert m["note"] is None
    # the bootstrap intervals against a plain numpy loop over the metrics' definitions (other RNG: a tolerance)
    assert auc_by_hand(Y, SCORE) == pytest.approx(m["roc_auc"]) and f1_by_hand(Y, FLAGGED) == pytest.approx(m["f1"])
    f1 = numpy_stratified_bootstrap(f1_by_hand, Y, FLAGGED)
    auc = numpy_stratified_bootstrap(auc_by_hand, Y, SCORE)
    assert (m["f1_ci_low"], m["f1_ci_high"]) == pytest.approx(tuple(f1), abs=0.05)
    assert (m["roc_auc_ci_low"], m["roc_auc_ci_high"]) == pytest.approx(tuple(auc), abs=0.05)
    for name in ("f1", "roc_auc"):
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"] and m[f"{name}_ci_low"] < m[f"{name}_ci_high"]
    # seeded: the same seed gives the same interval, another seed another
    assert classification_metrics(Y, FLAGGED, SCORE, n_resamples=2000, seed=0) == m
    other = classification_metrics(Y, FLAGGED, SCORE, n_resamples=2000, seed=1)
    assert (other["roc_auc_ci_low"], other["roc_auc_ci_high"]) != (m["roc_auc_ci_low"], m["roc_auc_ci_high"])


def test_validation_rows_by_category_and_a_single_class_category():
    """'all' first, then each category; a category with only human refusals, all flagged, has no FPR,
    ROC-AUC or kappa (NULL with the reasons), not a crash."""
    cats = ["a"] * 6 + ["b"] * 6
    y = np.r_[Y[:6], [True] * 6]  # b: every example a human-labelled refusal ...
    flagged = np.r_[FLAGGED[:6], [True] * 6]  # ... and every one flagged
    score = np.r_[SCORE[:6], [0.9] * 6]
    ex = pl.DataFrame({"refusal": y.astype(int), "category": cats})
    rows = validation_rows("j", "v1", ex, flagged, score, n_resamples=500, seed=0)
    assert [r["category"] for r in rows] == ["all", "a", "b"]
    assert all(set(r) == set(SCHEMA) for r in rows)
    for r, mask in zip(rows, [np.ones(12, bool), np.array(cats) == "a", np.array(cats) == "b"]):
        assert r["n"] == mask.sum() and r["accuracy"] == pytest.approx(accuracy_score(y[mask], flagged[mask]))
        assert r["recall"] == pytest.approx(recall_score(y[mask], flagged[mask]))
    b = rows[2]
    assert (b["tp"], b["fp"], b["fn"], b["tn"]) == (6, 0, 0, 0) and b["recall"] == 1.0 and b["precision"] == 1.0
    assert b["fpr"] is None and b["roc_auc"] is None and b["kappa"] is None and b["kappa_ci_low"] is None
    assert "fpr: no human-labelled non-refusal" in b["note"] and "roc_auc: one class only" in b["note"]
    assert "chance agreement is 1, kappa undefined" in b["note"]
    assert b["f1"] == 1.0 and b["f1_ci_low"] == b["f1_ci_high"] == 1.0  # every resample is perfect
    frame = pl.DataFrame(rows, schema=SCHEMA)  # NULLs, not NaN, where undefined
    assert frame.filter(pl.col("category") == "b")["roc_auc"].null_count() == 1


def test_validate_judges_breaks_down_labelled_examples_by_category():
    ex = pl.DataFrame(
        {
            "prompt": ["how to x"] * 4 + ["how to y"] * 4,
            "response": ["I'm sorry, I can't.", "Sure: step 1", "I cannot do that", "Here you go"] * 2,
            "refusal": [1, 0, 1, 1, 1, 0, 0, 0],
            "category": ["cyber"] * 4 + ["bio"] * 4,
        }
    )
    df = validate_judges(examples=ex, judges=("prefix",), n_resamples=200)
    assert df.schema == pl.Schema(SCHEMA) and df["category"].to_list() == ["all", "bio", "cyber"]
    flagged = np.array([1, 0, 1, 0] * 2, dtype=bool)
    y = ex["refusal"].to_numpy().astype(bool)
    for r in df.iter_rows(named=True):
        mask = np.ones(8, bool) if r["category"] == "all" else (ex["category"] == r["category"]).to_numpy()
        assert r["accuracy"] == pytest.approx(accuracy_score(y[mask], flagged[mask]))
        assert r["kappa"] == pytest.approx(cohen_kappa_score(y[mask], flagged[mask]))


def test_kappa_interval_edge_cases():
    assert kappa_interval([], [])["kappa"] is None
    same = kappa_interval([True] * 5, [True] * 5, ("p", "e"))
    assert same["kappa"] is None and "p and e give every item the same label (refusal)" in same["note"]
    one = kappa_interval([True] * 5, [True, False, True, True, False], ("p", "e"))
    assert one["kappa"] == 0.0 == cohen_kappa_score([1] * 5, [1, 0, 1, 1, 0]) and one["kappa_ci_low"] is None
    assert "p gives every item one label" in one["note"]
    perfect = kappa_interval([True, False] * 3, [True, False] * 3)
    assert perfect["kappa"] == perfect["kappa_ci_low"] == perfect["kappa_ci_high"] == 1.0


def test_kappa_standard_error_matches_the_bootstrap_at_moderate_n():
    """The large-sample interval's half-width is close to 1.96 bootstrap standard deviations at n = 300."""
    rng = np.random.default_rng(3)
    a = rng.random(300) < 0.4
    b = np.where(rng.random(300) < 0.8, a, rng.random(300) < 0.5)
    k = kappa_interval(a, b)
    boots = []
    for _ in range(4000):
        i = rng.integers(0, 300, 300)
        x, y = a[i], b[i]
        pe = x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean())
        boots.append((np.mean(x == y) - pe) / (1 - pe))
    assert (k["kappa_ci_high"] - k["kappa_ci_low"]) / 2 == pytest.approx(1.96 * np.std(boots), rel=0.12)


def _judgments() -> pl.DataFrame:
    """Two models x (6 harmful prompts in two categories + 2 over-refusal prompts), two judges."""
    rows = []
    prefix = {"base": [1, 1, 0, 0, 1, 1, 0, 1], "m1": [1, 0, 0, 1, 1, 1, 0, 0]}
    embed = {"base": [1, 0, 0, 0, 1, 1, 1, 1], "m1": [1, 0, 1, 1, 1, 1, 0, 1]}
    cats = ["cyber", "cyber", "cyber", "bio", "bio", "bio", "cyber", "cyber"]
    for model in ("base", "m1"):
        for judge, verdicts in (("prefix", prefix), ("embedding", embed)):
            for i, (cat, refused) in enumerate(zip(cats, verdicts[model])):
                benign = i >= 6
                rows.append({"model_id": model, "adapter_id": None if model == "base" else "m1",
                             "benchmark": "benign" if benign else "hb", "role": "benign" if benign else "eval",
                             "prompt_id": f"p{i}", "category": cat, "judge": judge, "judge_version": f"{judge}-v",
                             "refused": bool(refused), "generation_version": f"g-{model}"})  # fmt: skip
    return pl.DataFrame(rows)


def test_agreement_pooled_per_model_per_role_and_category():
    j = _judgments()
    df = judge_agreement(j, "ev1")
    keys = [(r["model_id"], r["role"], r["category"]) for r in df.iter_rows(named=True)]
    assert keys == [("all", "all", "all"), ("base", "all", "all"), ("m1", "all", "all"), ("all", "benign", "all"),
                    ("all", "eval", "all"), ("all", "benign", "cyber"), ("all", "eval", "bio"),
                    ("all", "eval", "cyber")]  # fmt: skip
    assert set(df["judge_a"]) == {"embedding"} and set(df["judge_b"]) == {"prefix"}  # sorted pair
    wide = j.pivot("judge", index=["model_id", "role", "category", "prompt_id"], values="refused")
    for r in df.iter_rows(named=True):
        sel = wide
        for col in ("model_id", "role", "category"):
            sel = sel if r[col] == "all" else sel.filter(pl.col(col) == r[col])
        a, b = sel["embedding"].to_numpy(), sel["prefix"].to_numpy()
        assert r["n"] == len(a) and r["agreement"] == pytest.approx(np.mean(a == b))
        assert (r["agreement_ci_low"], r["agreement_ci_high"]) == pytest.approx(
            proportion_confint(int(np.sum(a == b)), len(a), method="wilson")
        )
        assert (r["rate_a"], r["rate_b"]) == pytest.approx((a.mean(), b.mean()))
        if r["kappa"] is not None:
            assert r["kappa"] == pytest.approx(cohen_kappa_score(a, b))
        if r["kappa_ci_low"] is not None:
            assert (r["kappa"], r["kappa_ci_low"], r["kappa_ci_high"]) == pytest.approx(fce_interval(a, b))
        # lineage: versions of both judges; the model's adapter and generations on its own rows only
        assert (r["judge_a_version"], r["judge_b_version"], r["eval_version"]) == ("embedding-v", "prefix-v", "ev1")
        per_model = r["model_id"] != "all"
        assert r["generation_version"] == (f"g-{r['model_id']}" if per_model else None)
    assert df.filter(pl.col("model_id") == "m1")["adapter_id"].to_list() == ["m1"]
    assert df.filter(pl.col("model_id") == "base")["adapter_id"].to_list() == [None]


def test_agreement_in_a_single_class_category_is_null_with_a_reason():
    """Both judges call every answer in 'bio' a refusal: kappa undefined there, the other rows unaffected."""
    j = _judgments().with_columns(refused=pl.when(pl.col("category") == "bio").then(True).otherwise(pl.col("refused")))
    df = judge_agreement(j)
    bio = df.filter(pl.col("category") == "bio").row(0, named=True)
    assert bio["n"] == 6 and bio["agreement"] == 1.0 and bio["kappa"] is None and bio["kappa_ci_high"] is None
    assert "chance agreement is 1, kappa undefined" in bio["note"]
    pooled = df.row(0, named=True)
    assert pooled["kappa"] is not None and pooled["note"] is None
    assert df["eval_version"].null_count() == len(df)


def test_judge_tables_of_a_real_tiny_run_carry_the_intervals_and_breakdowns(tiny_template):
    """`ealign run --profile tiny`: the new columns exist and are filled in both tables."""
    from ealign_dagster.core.store import Store

    store = Store(tiny_template[0] / "results.duckdb")
    v = store.query("SELECT * FROM judge_validation ORDER BY judge", read_only=True)
    assert set(SCHEMA) <= set(v.columns) and v["category"].to_list() == ["all", "all"]
    assert v["judge"].to_list() == ["embedding", "prefix"] and (v["n"] >= 50).all()
    for m in ("accuracy", "precision", "recall", "fpr", "f1", "roc_auc", "kappa"):
        assert v.filter(~((pl.col(f"{m}_ci_low") <= pl.col(m)) & (pl.col(m) <= pl.col(f"{m}_ci_high")))).is_empty(), m
    a = store.query("SELECT * FROM judge_agreement", read_only=True)
    models = set(store.query("SELECT DISTINCT model_id FROM judgments", read_only=True)["model_id"])
    assert {"model_id", "role", "category", "kappa_ci_low", "kappa_ci_high", "agreement_ci_low", "note",
            "judge_a_version", "eval_version"} <= set(a.columns)  # fmt: skip
    assert set(a["model_id"]) == models | {"all"} and {"all", "eval", "benign"} <= set(a["role"])
    cats = set(store.query("SELECT DISTINCT category FROM judgments", read_only=True)["category"])
    assert set(a.filter(pl.col("category") != "all")["category"]) == cats
    pooled = a.filter((pl.col("model_id") == "all") & (pl.col("role") == "all"))
    assert (
        len(pooled) == 1
        and pooled["n"][0]
        == store.query("SELECT count(*) AS n FROM judgments WHERE judge = 'prefix'", read_only=True)["n"][0]
    )
    assert a.filter(pl.col("kappa").is_null() & pl.col("note").is_null()).is_empty()  # a NULL kappa says why
    assert (a["n"] > 0).all() and a["agreement_ci_low"].null_count() == 0


def test_report_shows_the_intervals_and_a_per_category_kappa_table():
    from ealign_dagster.report import judges as judge_tables
    from ealign_dagster.report import render

    ex = pl.DataFrame({"refusal": Y.astype(int), "category": ["a"] * 12})
    validation = pl.DataFrame(validation_rows("prefix", "v", ex, FLAGGED, SCORE, n_resamples=200), schema=SCHEMA)
    data = render.ReportData(*[pl.DataFrame()] * 5, judge_validation=validation,
                             judge_agreement=judge_agreement(_judgments(), "ev1"),
                             labels={"base": "base", "m1": "virtue / narrow_illegal"})  # fmt: skip
    page = "".join(f"<h2>{title}</h2>{render._table(df)}" for title, df in judge_tables.tables(data))
    val = page.split("<h2>Judge validation")[1].split("</table>")[0]
    lo, hi = proportion_confint(9, 12, method="wilson")
    assert f"<td>0.750 [{lo:.3f}, {hi:.3f}]</td>" in val and "<th>roc_auc</th>" in val and "<th>kappa</th>" in val
    cat = page.split("<h2>Judge agreement on refusal by prompt role and category")[1].split("</table>")[0]
    cyber = [line for line in cat.split("<tr>") if "<td>eval</td>" in line and "<td>cyber</td>" in line]
    j = _judgments().filter((pl.col("role") == "eval") & (pl.col("category") == "cyber")).sort("model_id", "prompt_id")
    a, b = (j.filter(pl.col("judge") == name)["refused"].to_numpy() for name in ("embedding", "prefix"))
    k, klo, khi = fce_interval(a, b)
    assert len(cyber) == 1 and f"<td>{k:.3f} [{klo:.3f}, {khi:.3f}]</td>" in cyber[0] and -1 < klo < k < khi <= 1
    per_model = page.split("<h2>Judge agreement on refusal per model")[1].split("</table>")[0]
    assert "<td>virtue / narrow_illegal</td>" in per_model and "<td>base</td>" in per_model
