"""The evaluation stage: the evaluation set built from the registered benchmarks."""

import polars as pl

from ealign_dagster.core.config import Profile, load_profile
from ealign_dagster.core.store import Lineage, Store
from ealign_dagster.evaluation.benchmarks import BENCHMARKS, eval_set


def _store(tmp_path) -> Store:
    """Two evaluation prompts; prompt p1 sits in two scopes' splits under different categories, as
    after a taxonomy edit re-ran one scope's split but not yet the other's."""
    store = Store(tmp_path / "results.duckdb")
    prompts = pl.DataFrame({
        "prompt_id": ["p1", "p2"], "source": ["harmbench"] * 2, "source_version": ["v"] * 2, "role": ["eval"] * 2,
        "text": ["first prompt", "second prompt"], "category": ["illegal", "harassment_bullying"],
        "functional_category": ["standard", "contextual"], "label_origin": ["source"] * 2, "assigned": [True] * 2,
    })  # fmt: skip
    store.replace_many([("prompts", prompts, {})], Lineage("r", "prompts"), "v")
    for scope, category in (("broad", "illegal"), ("narrow_illegal", "misinformation_disinformation")):
        split = pl.DataFrame({
            "scope": [scope] * 2, "role": ["eval"] * 2, "prompt_id": ["p1", "p2"], "source": ["harmbench"] * 2,
            "source_version": ["v"] * 2, "category": [category, "harassment_bullying"], "category_role": ["other"] * 2,
            "held_out": [False] * 2, "split_version": [scope] * 2,
        })  # fmt: skip
        store.replace_many([("splits", split, {"scope": scope})], Lineage("r", "splits", scope), scope)
    return store


def _without_lookalikes(cfg):
    """The profile with eval.benign off: no over-refusal set at all."""
    data = cfg.model_dump()
    data["eval"]["benign"] = False
    data["prompts"]["sources"] = [s for s in data["prompts"]["sources"] if s["role"] != "benign"]
    return Profile.model_validate(data)


def _with_lookalikes(store: Store, cfg) -> Store:
    """The shipped look-alikes in `prompts`, as the prompts asset reads them."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.prompts.build import build_prompts

    only = cfg.prompts.model_copy(update={"sources": [s for s in cfg.prompts.sources if s.role == "benign"],
                                          "reference": []})  # fmt: skip
    rows = build_prompts(only, load_taxonomy())[0]
    old = store.table("prompts")
    store.replace_many([("prompts", pl.concat([old, rows], how="diagonal_relaxed"), {})], Lineage("r", "prompts"), "v")
    return store


def test_each_evaluation_prompt_is_in_the_set_once(tmp_path):
    cfg = _without_lookalikes(load_profile("tiny"))
    df, version = eval_set(_store(tmp_path), cfg)
    assert sorted(df["prompt_id"]) == ["p1", "p2"]  # not generated and judged twice
    assert dict(zip(df["prompt_id"], df["category"])) == {"p1": "illegal", "p2": "harassment_bullying"}
    assert dict(zip(df["prompt_id"], df["benchmark"])) == {"p1": "harmbench_standard", "p2": "harmbench_contextual"}
    assert set(df["role"]) == {"eval"}
    assert eval_set(_store(tmp_path / "again"), cfg)[1] == version  # a content hash: same rows, same version


def test_benign_lookalikes_are_a_stratified_seeded_subset(tmp_path):
    cfg = load_profile("demo")
    df, _ = eval_set(_with_lookalikes(_store(tmp_path), cfg), cfg)
    benign = df.filter(pl.col("benchmark") == "benign")
    assert set(BENCHMARKS) == {"harmful", "over_refusal"}
    assert benign.height == cfg.eval.benign_limit == 36
    per_category = benign.group_by("category").len()["len"]
    assert per_category.max() - per_category.min() <= 1  # stratified: every category equally
    assert benign["kind"].null_count() == 0 and set(benign["role"]) == {"benign"}
