"""Agreement between judges on the same responses."""

from __future__ import annotations

import math

import polars as pl

from ealign_dagster.core.stats import cohen_kappa

RESPONSE = ["model_id", "benchmark", "prompt_id"]


def judge_agreement(judgments: pl.DataFrame) -> pl.DataFrame:
    """Cohen's kappa on the refusal verdict for every pair of judges over the same responses."""
    judges = sorted(judgments["judge"].unique())
    verdicts = {j: judgments.filter(pl.col("judge") == j).select(*RESPONSE, pl.col("refused").alias(j)) for j in judges}
    rows = []
    for i, a in enumerate(judges):
        for b in judges[i + 1 :]:
            both = verdicts[a].join(verdicts[b], on=RESPONSE).drop_nulls([a, b])
            x, y = both[a].to_numpy().astype(bool), both[b].to_numpy().astype(bool)
            rows.append({"judge_a": a, "judge_b": b, "field": "refused", "n": len(both),
                         "agreement": float((x == y).mean()) if len(both) else math.nan, "kappa": cohen_kappa(x, y)})  # fmt: skip
    schema = {"judge_a": pl.String, "judge_b": pl.String, "field": pl.String, "n": pl.Int64, "agreement": pl.Float64,
              "kappa": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)
