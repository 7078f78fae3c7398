"""Agreement between judges on the same responses."""

from __future__ import annotations

import math

import pandas as pd

from ealign_dagster.core.stats import cohen_kappa


def judge_agreement(judgments: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa on the refusal verdict for every pair of judges over the same responses."""
    wide = judgments.pivot_table(
        index=["model_id", "benchmark", "prompt_id"], columns="judge", values="refused", aggfunc="first"
    )
    judges = sorted(wide.columns)
    rows = []
    for i, a in enumerate(judges):
        for b in judges[i + 1 :]:
            both = wide[[a, b]].dropna()
            x, y = both[a].astype(bool).to_numpy(), both[b].astype(bool).to_numpy()
            rows.append(
                {
                    "judge_a": a,
                    "judge_b": b,
                    "field": "refused",
                    "n": len(both),
                    "agreement": float((x == y).mean()) if len(both) else math.nan,
                    "kappa": cohen_kappa(x, y),
                }
            )
    return pd.DataFrame(rows, columns=["judge_a", "judge_b", "field", "n", "agreement", "kappa"])
