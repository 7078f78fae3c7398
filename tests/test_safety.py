"""Safety statistics on fixed judgments: rates, intervals, McNemar, Holm, emergent alignment."""

import math

import pandas as pd
import pytest

from ealign_dagster.core.schemas import load_taxonomy
from ealign_dagster.judges.agreement import judge_agreement
from ealign_dagster.safety import scores as ss


def _judgments():
    """base + one narrow_harassment adapter; 4 harassment (trained), 4 chem/bio (held-out), 4 benign."""
    rows = []
    cats = ["harassment_bullying"] * 4 + ["chemical_biological"] * 4
    base_ref = [False, False, False, True, False, False, True, True]  # base refuses 1/4 and 2/4
    ad_ref = [True, True, True, True, True, False, True, True]  # adapter refuses 4/4 and 3/4
    for model, refused, benign in (
        ("base", base_ref, [False, False, False, False]),
        ("a1", ad_ref, [True, True, False, False]),
    ):
        for i, (c, r) in enumerate(zip(cats, refused)):
            rows.append(
                {
                    "model_id": model,
                    "benchmark": "harmbench_standard",
                    "prompt_id": f"h{i}",
                    "category": c,
                    "judge": "prefix",
                    "refused": r,
                    "harmful": None,
                }
            )
        for i, r in enumerate(benign):
            rows.append(
                {
                    "model_id": model,
                    "benchmark": "benign",
                    "prompt_id": f"b{i}",
                    "category": "illegal",
                    "judge": "prefix",
                    "refused": r,
                    "harmful": None,
                }
            )
    return pd.DataFrame(rows)


MODELS = pd.DataFrame(
    [
        {"model_id": "base", "constitution": None, "scope": None},
        {"model_id": "a1", "constitution": "virtue", "scope": "narrow_harassment"},
    ]
)


def test_safety_rows_rates_intervals_and_tests():
    df = ss.safety_rows(_judgments(), MODELS, load_taxonomy())
    r = df[(df.model_id == "a1") & (df.category == "harassment_bullying")].iloc[0]
    assert (
        r.metric == "non_refusal_rate" and r.category_role == "trained" and r.n == 4 and r.events == 0 and r.rate == 0
    )
    b = df[(df.model_id == "base") & (df.category == "harassment_bullying")].iloc[0]
    assert b.rate == 0.75 and math.isnan(b.p_value)
    assert r.p_value == pytest.approx(0.25)  # 3 discordant pairs, all one way: 2 / 2^3
    h = df[(df.model_id == "a1") & (df.category == "chemical_biological")].iloc[0]
    assert h.held_out and h.category_role == "held_out"
    o = df[(df.model_id == "a1") & (df.benchmark == "benign") & (df.category == "all")].iloc[0]
    assert o.metric == "refusal_rate" and o.rate == 0.5
    tested = df.dropna(subset=["p_value"])
    assert (tested["p_holm"] >= tested["p_value"] - 1e-12).all()


def test_emergent_alignment_rows():
    df = ss.emergent_rows(_judgments(), MODELS, load_taxonomy(), "prefix", 500).set_index("category_role")
    assert (
        df.loc["trained", "base_rate"] == 0.75
        and df.loc["trained", "model_rate"] == 0
        and df.loc["trained", "delta"] == -0.75
    )
    assert df.loc["held_out", "delta"] == pytest.approx(0.25 - 0.5)
    assert df.loc["over_refusal", "delta"] == 0.5 and df.loc["over_refusal", "metric"] == "refusal_rate"
    assert df.loc["trained", "ci_low"] <= -0.75 <= df.loc["trained", "ci_high"]
    assert (df["p_holm"] >= df["p_value"] - 1e-12).all()


def test_judge_agreement_kappa():
    j = _judgments()
    other = j.assign(judge="embedding")
    other.loc[other.index[:2], "refused"] = ~other.loc[other.index[:2], "refused"]
    agree = judge_agreement(pd.concat([j, other]))
    assert len(agree) == 1 and agree.iloc[0]["n"] == len(j)
    assert agree.iloc[0]["agreement"] == pytest.approx(1 - 2 / len(j))
