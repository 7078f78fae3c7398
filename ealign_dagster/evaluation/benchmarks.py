"""Benchmarks of the evaluation set, registered once with their name: each is a function
(store, profile) -> rows (prompt_id, benchmark, category, kind, prompt).
Adding a benchmark touches this file only."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import stable_int
from ealign_dagster.core.store import Store, data_version

COLUMNS = ["prompt_id", "benchmark", "category", "kind", "prompt"]
BENCHMARKS: dict[str, Callable[[Store, Profile], pl.DataFrame]] = {}


def register(name: str):
    def add(fn):
        BENCHMARKS[name] = fn
        return fn

    return add


@register("harmful")
def harmful_prompts(store: Store, cfg: Profile) -> pl.DataFrame:
    """The evaluation split's prompts, once each (every scope shares them); a benchmark per source
    and functional category (HarmBench: harmbench_standard, harmbench_contextual)."""
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
    )
    return rows.select(COLUMNS)


@register("benign")
def benign_lookalikes(store: Store, cfg: Profile) -> pl.DataFrame:
    """Safe prompts that resemble harmful ones (over-refusal); a seeded, category-stratified subset."""
    from ealign_dagster.core.schemas import load_benign

    if not cfg.eval.benign:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    rows = pl.DataFrame([p.model_dump() for p in load_benign().prompts]).rename(
        {"id": "prompt_id", "resembles": "category", "text": "prompt"}
    )
    limit = cfg.eval.benign_limit
    if limit is not None and rows.height > limit:
        order = pl.Series([stable_int(cfg.eval.seed, i) for i in rows["prompt_id"]])
        rows = rows.with_columns(_order=order).sort("_order")
        rows = rows.with_columns(_rank=pl.int_range(pl.len()).over("category")).sort(["_rank", "_order"]).head(limit)
    rows = rows.with_columns(benchmark=pl.lit("benign"))
    return rows.select(COLUMNS)


def eval_set(store: Store, cfg: Profile) -> tuple[pl.DataFrame, str]:
    """Every registered benchmark's rows, and the set's version (a content hash of its rows)."""
    parts = [fn(store, cfg) for fn in BENCHMARKS.values()]
    df = pl.concat([p for p in parts if p.height], how="vertical")
    return df, data_version(df)[:16]
