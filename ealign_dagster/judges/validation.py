"""Judge validation: accuracy and ROC-AUC of the offline judges on held-back human labels."""

from __future__ import annotations

import polars as pl

from ealign_dagster.judges.embedding import holdout_split, refusal_examples
from ealign_dagster.judges.registry import JudgeContext, run_judge

OFFLINE_JUDGES = ("prefix", "embedding")


def validate_judges(ctx: JudgeContext | None = None) -> pl.DataFrame:
    """One row per offline judge: accuracy, ROC-AUC, precision and recall on the held-back labels."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    data = refusal_examples()
    _, held = holdout_split(data)
    part = data[held]
    y = part["refusal"].to_numpy()
    rows = []
    for judge in OFFLINE_JUDGES:
        v = run_judge(judge, part["prompt"].to_list(), part["response"].to_list(), ctx)
        rows.append(
            {
                "judge": judge,
                "judge_version": v.version,
                "n": len(y),
                "positives": int(y.sum()),
                "accuracy": float(accuracy_score(y, v.refused)),
                "roc_auc": float(roc_auc_score(y, v.score)),
                "precision": float((y[v.refused] == 1).mean()) if v.refused.any() else float("nan"),
                "recall": float(v.refused[y == 1].mean()),
            }
        )
    return pl.DataFrame(rows)
