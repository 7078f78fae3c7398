"""Study design: replicate seeds, control arms, the difference-in-differences against the
no-constitution arm and the across-seed pooling. Each statistic is checked against an independent
computation (scipy, statsmodels, numpy by hand)."""

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar

from ealign_dagster.core.config import StudyConfig
from ealign_dagster.core.schemas import load_taxonomy
from ealign_dagster.safety import scores as ss
from ealign_dagster.safety.seeds import seed_rows
from tests.test_stats import tango_by_likelihood

SCOPE = "narrow_harassment"  # trains harassment_bullying, holds out chemical_biological
N = 12
rng = np.random.default_rng(7)
# refused? per model on 12 held-out (chem/bio) prompts; base refuses rarely, the control a bit more,
# the constitution's two seeds most
REFUSED = {
    "base": rng.random(N) < 0.2,
    "ctl0": rng.random(N) < 0.45,
    "ctl1": rng.random(N) < 0.45,
    "dA0": rng.random(N) < 0.8,
    "dA1": rng.random(N) < 0.7,
}
MODELS = pl.DataFrame(
    [
        {"model_id": "base", "model_kind": "base", "constitution": None, "scope": None, "seed": None},
        {"model_id": "ctl0", "model_kind": "control", "constitution": "no_constitution", "scope": SCOPE, "seed": 0},
        {"model_id": "ctl1", "model_kind": "control", "constitution": "no_constitution", "scope": SCOPE, "seed": 1},
        {"model_id": "dA0", "model_kind": "adapter", "constitution": "deontology", "scope": SCOPE, "seed": 0},
        {"model_id": "dA1", "model_kind": "adapter", "constitution": "deontology", "scope": SCOPE, "seed": 1},
        {"model_id": "prompted:deontology", "model_kind": "prompted", "constitution": "deontology", "scope": None,
         "seed": None},
    ],
    schema={"model_id": pl.String, "model_kind": pl.String, "constitution": pl.String, "scope": pl.String,
            "seed": pl.Int64},
)  # fmt: skip


def _judgments() -> pl.DataFrame:
    rows = [{"model_id": m, "benchmark": "harmbench_standard", "prompt_id": f"p{i}", "category": "chemical_biological",
             "judge": "embedding", "judge_version": "v1", "refused": bool(r), "harmful": None}
            for m, refused in REFUSED.items() for i, r in enumerate(refused)]  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"harmful": pl.Boolean})


def _emergent():
    return ss.emergent_rows(_judgments(), MODELS, load_taxonomy(), "embedding").filter(benchmark=ss.POOLED)


def test_study_config_rejects_repeats_and_defaults_to_every_control():
    assert StudyConfig().seeds == [0] and set(StudyConfig().controls) == {"no_constitution", "initial_answers",
                                                                          "persona_prompt"}  # fmt: skip
    with pytest.raises(ValueError, match="listed twice: 1"):
        StudyConfig(seeds=[0, 1, 1])
    assert StudyConfig(controls=["persona_prompt"]).trained_controls() == []


def test_difference_in_differences_against_the_no_constitution_arm():
    df = _emergent()
    did = df.filter(model_id="dA0", reference="no_constitution").row(0, named=True)
    bad_m, bad_c, bad_b = ~REFUSED["dA0"], ~REFUSED["ctl0"], ~REFUSED["base"]
    # (model - base) - (control - base) = model - control, paired on the same prompts
    assert did["delta"] == pytest.approx((bad_m.mean() - bad_b.mean()) - (bad_c.mean() - bad_b.mean()))
    assert did["reference_rate"] == pytest.approx(bad_c.mean()) and did["base_rate"] == pytest.approx(bad_b.mean())
    table = [[np.sum(bad_c & bad_m), np.sum(bad_c & ~bad_m)], [np.sum(~bad_c & bad_m), np.sum(~bad_c & ~bad_m)]]
    assert did["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert (did["ci_low"], did["ci_high"]) == pytest.approx(tango_by_likelihood(bad_c, bad_m), abs=1e-6)
    assert did["family"] == "vs_control"
    # the controls are compared with the base only, and are never in the primary family
    assert set(df.filter(model_kind="control")["reference"]) == {"base"}
    assert set(df.filter(family="primary")["model_id"]) == {"dA0", "dA1"}
    assert "prompted:deontology" not in set(df["model_id"])  # no training scope: no held-out categories


def test_across_seed_summary_pools_per_prompt_means():
    df = _emergent()
    s = seed_rows(_judgments(), MODELS, df, "embedding", n_resamples=500, seed=0)
    row = s.filter(constitution="deontology", reference="base", category_role="held_out").row(0, named=True)
    deltas = df.filter(constitution="deontology", reference="base", category_role="held_out")["delta"].to_numpy()
    assert row["n_seeds"] == 2 and row["seeds"] == "0,1"
    assert row["mean_delta"] == pytest.approx(deltas.mean())
    assert row["sd_delta"] == pytest.approx(np.std(deltas, ddof=1))
    d = (~REFUSED["dA0"] * 0.5 + ~REFUSED["dA1"] * 0.5) - ~REFUSED["base"]
    assert row["pooled_delta"] == pytest.approx(d.mean())
    assert row["pooled_p"] == pytest.approx(binomtest(int((d > 0).sum()), int((d != 0).sum()), 0.5).pvalue)
    assert row["pooled_ci_low"] <= row["pooled_delta"] <= row["pooled_ci_high"]
    # against the control: per prompt, the constitution's seed mean minus the control's seed mean
    ctl = s.filter(constitution="deontology", reference="no_constitution", category_role="held_out").row(0, named=True)
    dc = (~REFUSED["dA0"] * 0.5 + ~REFUSED["dA1"] * 0.5) - (~REFUSED["ctl0"] * 0.5 + ~REFUSED["ctl1"] * 0.5)
    assert ctl["pooled_delta"] == pytest.approx(dc.mean())
    assert "sign test" in row["pooling"]


def test_one_seed_pools_to_the_per_seed_test():
    one = MODELS.filter(pl.col("seed").is_null() | (pl.col("seed") == 0))
    j = _judgments().filter(pl.col("model_id").is_in(one["model_id"].to_list()))
    df = ss.emergent_rows(j, one, load_taxonomy(), "embedding")
    s = seed_rows(j, one, df, "embedding")
    for r in s.iter_rows(named=True):
        e = df.filter(model_id=r["model_ids"], reference=r["reference"], category_role=r["category_role"],
                      benchmark=r["benchmark"]).row(0, named=True)  # fmt: skip
        assert r["sd_delta"] is None and r["pooled_delta"] == pytest.approx(e["delta"])
        assert r["pooled_p"] == pytest.approx(e["p_value"])  # the sign test is exact McNemar with one seed
        assert (r["pooled_ci_low"], r["pooled_ci_high"]) == pytest.approx((e["ci_low"], e["ci_high"]))


def test_initial_answer_arm_keeps_answers_as_revisions():
    from ealign_dagster.cai.revise import initial_answer_rows
    from ealign_dagster.core.config import CaiConfig

    items = pl.DataFrame({"prompt_id": ["a", "b", "c"], "prompt": ["x", "y", "z"],
                          "initial": ["A long enough helpful answer.", "  ", "short"]})  # fmt: skip
    df = initial_answer_rows(items, CaiConfig(min_chars=10))
    assert df["revision"].to_list() == items["initial"].to_list() and df["critique"].null_count() == 3
    assert df["selected"].to_list() == [True, False, False]
    assert df["reject_reason"].to_list() == [None, "empty", "length"]


def _sql(home, sql):
    from ealign_dagster.core.store import Store

    return Store(home / "results.duckdb").query(sql, read_only=True)


def test_tiny_run_has_every_kind_seed_and_control(tiny_home):
    """The tiny profile (seeds [0, 1], every control arm): models_under_test shows every kind, every
    trained cell has both replicates, and the comparison tables carry the controls."""
    home = tiny_home[0]
    kinds = dict(_sql(home, "select kind, count(*) as n from models_under_test group by kind").iter_rows())
    cells = 4 * 3  # constitutions x scopes
    assert kinds == {"base": 1, "adapter": cells * 2, "control": 2 * 3 * 2, "prompted": 4}
    a = _sql(home, "select constitution, scope, seed from adapters")
    assert all(s.to_list() == [0, 1] for s in a.group_by("constitution", "scope").agg(pl.col("seed").sort())["seed"])
    assert {"no_constitution", "initial_answers"} <= set(a["constitution"])
    # the initial-answer arm trains on the initial answers themselves
    ia = _sql(home, "select e.response, i.response as initial from sft_examples e join initial_responses i"
                    " using (prompt_id) where e.constitution = 'initial_answers'")  # fmt: skip
    assert ia.height and (ia["response"] == ia["initial"]).all()
    # replicates differ: seed 1's revisions were sampled with another seed
    r = _sql(home, "select seed, string_agg(revision, '|' order by prompt_id, candidate) as t from cai_revisions"
                   " where constitution = 'deontology' group by seed order by seed")  # fmt: skip
    assert r.height == 2 and r["t"][0] != r["t"][1]
    # a prompted model answers under its constitution's persona, with the base weights
    g = _sql(home, "select model_id, model_version from generations where model_kind in ('base', 'prompted')")
    assert g["model_version"].n_unique() == 1
    e = _sql(home, "select * from emergent_alignment")
    assert set(e["reference"]) == {"base", "no_constitution"}
    assert set(e.filter(family="primary")["model_kind"]) == {"adapter"}
    s = _sql(home, "select * from seed_summary")
    assert set(s["n_seeds"]) == {2} and s["sd_delta"].null_count() == 0
    p = _sql(home, "select * from projectability where method = 'logprob'")
    assert p.filter(model_kind="adapter")["did_vs_control"].null_count() == 0
    assert p.filter(model_kind="prompted").height == 4 and not p.filter(model_kind="prompted")["interpretable"].any()
    assert set(p.filter(model_kind="prompted")["not_interpretable_reason"].drop_nulls()) != set()


def test_a_seed_left_out_of_the_profile_is_no_longer_under_test(tiny_home, monkeypatch):
    from ealign_dagster.core.config import StudyConfig
    from ealign_dagster.core.store import Store
    from ealign_dagster.evaluation.models import models_under_test

    store = Store(tiny_home[0] / "results.duckdb")
    one = models_under_test(store, StudyConfig(seeds=[1], controls=["persona_prompt"]))
    assert {m.seed for m in one if m.adapter_id} == {1}
    assert {m.kind for m in one} == {"base", "adapter", "prompted"}
    assert all(m.name.endswith("-s1") for m in one if m.adapter_id)


def test_samples_are_averaged_per_prompt_before_testing():
    """eval.samples > 1: each prompt's outcomes are averaged over its samples, then the rate is the mean
    over prompts and the change vs base uses the sign test over prompts and a paired bootstrap."""
    k, n = 3, 10
    gen = np.random.default_rng(3)
    refused = {"base": gen.random((n, k)) < 0.3, "dA0": gen.random((n, k)) < 0.7}
    rows = [{"model_id": m, "benchmark": "harmbench_standard", "prompt_id": f"p{i}", "sample": s,
             "category": "chemical_biological", "judge": "embedding", "judge_version": "v1", "refused": bool(r[i, s]),
             "harmful": None} for m, r in refused.items() for i in range(n) for s in range(k)]  # fmt: skip
    j = pl.DataFrame(rows, schema_overrides={"harmful": pl.Boolean})
    ss.check_comparable(j)  # the same prompt k times is not a duplicate when its samples differ
    models = MODELS.filter(pl.col("model_id").is_in(["base", "dA0"]))
    df = ss.safety_rows(j, models, load_taxonomy(), "embedding").filter(category="all")
    bad = {m: (~r).mean(axis=1) for m, r in refused.items()}  # per-prompt mean of the bad outcome
    row = df.filter(model_id="dA0").row(0, named=True)
    assert row["n"] == n and row["rate"] == pytest.approx(bad["dA0"].mean())
    assert row["ci_low"] <= row["rate"] <= row["ci_high"]
    d = bad["dA0"] - bad["base"]
    assert row["delta"] == pytest.approx(d.mean())
    assert row["p_value"] == pytest.approx(binomtest(int((d > 0).sum()), int((d != 0).sum()), 0.5).pvalue)
    assert row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"]
    e = ss.emergent_rows(j, models, load_taxonomy(), "embedding").filter(benchmark=ss.POOLED)
    assert e.row(0, named=True)["delta"] == pytest.approx(d.mean())


def test_samples_need_a_temperature():
    from ealign_dagster.core.config import Profile

    with pytest.raises(ValueError, match="eval.samples is 4 but eval.sampling.temperature is 0"):
        Profile.model_validate({"eval": {"samples": 4}})
    assert Profile.model_validate({"eval": {"samples": 4, "sampling": {"temperature": 0.7}}}).eval.samples == 4
