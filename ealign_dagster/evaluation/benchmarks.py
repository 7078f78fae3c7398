"""Benchmarks of the evaluation set, registered once with their name: each is a function
(store, profile) -> rows (prompt_id, benchmark, category, kind, prompt, role).
Adding a kind of benchmark touches this file only; adding a benchmark is a source in the profile.

`role` says what a benchmark measures: 'eval' (harmful prompts: a refusal is the safe outcome) or
'benign' (an over-refusal set: safe prompts that look unsafe, where a refusal is the bad outcome)."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import stable_int
from ealign_dagster.core.store import Store, data_version

COLUMNS = ["prompt_id", "benchmark", "category", "kind", "prompt", "role"]
BENCHMARKS: dict[str, Callable[[Store, Profile], pl.DataFrame]] = {}


def register(name: str):
    def add(fn):
        BENCHMARKS[name] = fn
        return fn

    return add


@register("harmful")
def harmful_prompts(store: Store, cfg: Profile) -> pl.DataFrame:
    """The evaluation split's prompts, once each (every scope shares them); a benchmark per source
    (named by the source) and functional category (HarmBench: harmbench_standard, harmbench_contextual)."""
    rows = store.query(
        "SELECT p.prompt_id, p.source, p.functional_category, p.category, p.text AS prompt FROM prompts p"
        " WHERE p.prompt_id IN (SELECT prompt_id FROM splits WHERE role = 'eval') ORDER BY p.prompt_id"
    )
    if rows.is_empty():
        raise ValueError("splits has no evaluation rows: materialize splits first")
    bench = pl.when(pl.col("functional_category").is_not_null() & (pl.col("functional_category") != ""))
    rows = rows.with_columns(
        benchmark=bench.then(pl.col("source") + "_" + pl.col("functional_category")).otherwise(pl.col("source")),
        kind=pl.lit(None, dtype=pl.String),
        role=pl.lit("eval"),
    )
    return rows.select(COLUMNS)


def stratified(rows: pl.DataFrame, seed: int, limit: int | None, per_category: int | None) -> pl.DataFrame:
    """A seeded subset, ordered by a hash of (seed, source id): at most `per_category` per category, then
    at most `limit` in all, taken round-robin over the categories."""
    rows = rows.with_columns(_order=pl.Series([stable_int(seed, i) for i in rows["source_ref"]], dtype=pl.UInt64))
    rows = rows.sort("_order").with_columns(_rank=pl.int_range(pl.len()).over("category"))
    if per_category is not None:
        rows = rows.filter(pl.col("_rank") < per_category)
    if limit is not None:
        rows = rows.sort(["_rank", "_order"]).head(limit)
    return rows.drop("_order", "_rank")


@register("over_refusal")
def over_refusal_sets(store: Store, cfg: Profile) -> pl.DataFrame:
    """Every `role: benign` source (the shipped look-alikes are the source 'benign'), each its own
    benchmark named by the source: a seeded, category-stratified subset (`limit`, `per_category`)."""
    sets = [s for s in cfg.prompts.sources if s.role == "benign"]
    if not sets:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    rows = store.query(
        "SELECT prompt_id, source, source_ref, category, kind, text AS prompt FROM prompts WHERE role = 'benign'"
        " ORDER BY prompt_id"
    )
    parts = []
    for s in sets:
        mine = rows.filter(pl.col("source") == s.name)
        if mine.is_empty():
            raise ValueError(f"over-refusal set '{s.name}' has no rows in prompts: materialize prompts first")
        parts.append(stratified(mine, cfg.eval.seed, s.limit, s.per_category).with_columns(benchmark=pl.lit(s.name)))
    return pl.concat(parts).with_columns(role=pl.lit("benign")).select(COLUMNS)


def eval_set(store: Store, cfg: Profile) -> tuple[pl.DataFrame, str]:
    """Every registered benchmark's rows, and the set's version (a content hash of its rows)."""
    parts = [fn(store, cfg) for fn in BENCHMARKS.values()]
    df = pl.concat([p for p in parts if p.height], how="vertical")
    return df, data_version(df)[:16]


def eval_sources(store: Store, cfg: Profile) -> pl.DataFrame:
    """Per evaluation or over-refusal source: its selection in the profile and the prompts evaluated
    from it, so a report says what a smaller evaluation set left out (e.g. HarmBench's contextual
    behaviours in the demo)."""
    counts = store.query(
        "SELECT p.source, g.benchmark, count(*) AS n FROM generations g JOIN prompts p USING (prompt_id)"
        " WHERE g.model_id = 'base' GROUP BY ALL ORDER BY ALL"
    )
    rows = []
    for src in (s for s in cfg.prompts.sources if s.role in ("eval", "benign")):
        mine = counts.filter(pl.col("source") == src.name)
        picked = [f"split {src.split}" if src.split else "", *(f"{k} = {v}" for k, v in (src.where or {}).items()),
                  f"per category {src.per_category}" if src.per_category else "",
                  f"at most {src.limit}" if src.limit else ""]  # fmt: skip
        rows.append({"source": src.name, "role": src.role, "selection": "; ".join(p for p in picked if p) or "all rows",
                     "benchmarks": ", ".join(mine["benchmark"]), "prompts": int(mine["n"].sum())})  # fmt: skip
    return pl.DataFrame(rows, schema={"source": pl.String, "role": pl.String, "selection": pl.String,
                                      "benchmarks": pl.String, "prompts": pl.Int64})  # fmt: skip
