"""Judge validation on held-back human labels: each offline judge's confusion counts; accuracy,
precision, recall and false-positive rate with Wilson intervals; F1 and ROC-AUC with seeded percentile
bootstrap intervals that resample the human-labelled refusals and non-refusals separately (class
counts fixed, so both stay defined in every resample); Cohen's kappa against the human labels with
its large-sample interval. One row per judge over all examples (category 'all') and one per prompt
category where the labelled examples carry one. pyrit's labelled refusal data carries no category,
so on it only the 'all' rows exist."""

from __future__ import annotations

import numpy as np
import polars as pl

from ealign_dagster.core.stats import bootstrap_ci
from ealign_dagster.judges.agreement import kappa_interval, rate_interval
from ealign_dagster.judges.embedding import holdout_split, refusal_examples
from ealign_dagster.judges.registry import JudgeContext, run_judge

OFFLINE_JUDGES = ("prefix", "embedding")
ALL = "all"
RESAMPLES = 2000  # endpoints move by up to 0.03 across seeds at n = 51 (F1 and AUC are discrete there)
SEED = 0
RATES = ("accuracy", "precision", "recall", "fpr", "f1", "roc_auc", "kappa")
SCHEMA = {
    "judge": pl.String, "judge_version": pl.String, "category": pl.String, "n": pl.Int64, "positives": pl.Int64,
    "tp": pl.Int64, "fp": pl.Int64, "fn": pl.Int64, "tn": pl.Int64,
    **{c: pl.Float64 for r in RATES for c in (r, f"{r}_ci_low", f"{r}_ci_high")},
    "note": pl.String,
}  # fmt: skip


def held_out_examples() -> pl.DataFrame:
    """The labelled responses the embedding classifier never saw: prompt, response, refusal, category
    (NULL: pyrit's labels carry no prompt category)."""
    data = refusal_examples()
    _, held = holdout_split(data)
    part = data[held]
    return part if "category" in part.columns else part.with_columns(category=pl.lit(None, dtype=pl.String))


def _f1(pos_flagged, neg_flagged=None, axis=-1):
    """F1 from the judge's verdicts on the human refusals and non-refusals: 2 TP / (TP + P + FP)."""
    tp = np.sum(pos_flagged, axis=axis)
    fp = 0 if neg_flagged is None else np.sum(neg_flagged, axis=axis)
    return 2 * tp / (tp + np.shape(pos_flagged)[axis] + fp)


def _auc(pos_scores, neg_scores, axis=-1):
    """ROC-AUC as the Mann-Whitney U of the refusals' scores over the non-refusals', divided by n1 n0."""
    from scipy.stats import mannwhitneyu

    u = mannwhitneyu(pos_scores, neg_scores, axis=axis, method="asymptotic").statistic
    return u / (np.shape(pos_scores)[axis] * np.shape(neg_scores)[axis])


def classification_metrics(y, flagged, score, n_resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Confusion counts and every metric with its 95% interval for one judge on one set of labelled
    examples (y: human refusal, flagged: the judge's verdict, score: its refusal score). A metric whose
    denominator is empty is None, and `note` says why."""
    from sklearn.metrics import confusion_matrix

    y, flagged, score = np.asarray(y, dtype=bool), np.asarray(flagged, dtype=bool), np.asarray(score, dtype=float)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, flagged, labels=[False, True]).ravel())
    out: dict = {"n": len(y), "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
    out |= {c: None for r in RATES for c in (r, f"{r}_ci_low", f"{r}_ci_high")}
    notes = []
    for name, hits, total, empty in (
        ("accuracy", tp + tn, len(y), "no examples"),
        ("precision", tp, tp + fp, "precision: the judge flags no refusal"),
        ("recall", tp, tp + fn, "recall: no human-labelled refusal"),
        ("fpr", fp, fp + tn, "fpr: no human-labelled non-refusal"),
    ):
        out |= dict(zip((name, f"{name}_ci_low", f"{name}_ci_high"), rate_interval(hits, total)))
        notes += [] if total else [empty]
    pos, neg = flagged[y].astype(float), flagged[~y].astype(float)
    if tp + fn:
        lo, hi = bootstrap_ci([pos, neg] if len(neg) else [pos], _f1, n_resamples=n_resamples, seed=seed)
        out |= {"f1": float(_f1(pos, neg if len(neg) else None)), "f1_ci_low": lo, "f1_ci_high": hi}
    else:
        notes.append("f1: no human-labelled refusal")
    if tp + fn and fp + tn:
        lo, hi = bootstrap_ci([score[y], score[~y]], _auc, n_resamples=n_resamples, seed=seed)
        out |= {"roc_auc": float(_auc(score[y], score[~y])), "roc_auc_ci_low": lo, "roc_auc_ci_high": hi}
    else:
        notes.append("roc_auc: one class only")
    k = kappa_interval(y, flagged, ("the human labels", "the judge"))
    out |= {key: v for key, v in k.items() if key != "note"}
    notes += [f"kappa: {k['note']}"] if k["note"] else []
    return out | {"note": "; ".join(notes) or None}


def validation_rows(judge: str, version: str, examples: pl.DataFrame, flagged, score, **kw) -> list[dict]:
    """One judge's rows: all examples (category 'all'), then each category the examples carry."""
    y = examples["refusal"].to_numpy().astype(bool)
    cats = examples["category"].to_numpy() if "category" in examples.columns else np.full(len(y), None)
    flagged, score = np.asarray(flagged, dtype=bool), np.asarray(score, dtype=float)
    groups = [(ALL, np.ones(len(y), dtype=bool))] + [(c, cats == c) for c in sorted({c for c in cats if c})]
    return [{"judge": judge, "judge_version": version, "category": c,
             **classification_metrics(y[m], flagged[m], score[m], **kw)} for c, m in groups]  # fmt: skip


def validate_judges(
    ctx: JudgeContext | None = None,
    examples: pl.DataFrame | None = None,
    judges=OFFLINE_JUDGES,
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
) -> pl.DataFrame:
    """Rows per judge x category ('all' first) on the held-back human labels (default: pyrit's)."""
    part = held_out_examples() if examples is None else examples
    rows = []
    for judge in judges:
        v = run_judge(judge, part["prompt"].to_list(), part["response"].to_list(), ctx)
        rows += validation_rows(judge, v.version, part, v.refused, v.score, n_resamples=n_resamples, seed=seed)
    return pl.DataFrame(rows, schema=SCHEMA)
