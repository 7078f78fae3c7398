"""`splits[scope]`: one scope's training pool plus the shared evaluation set (held-out categories
flagged), every filter drop in `split_audit`."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from ealign_dagster.inputs.assets import taxonomy_file
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.checks import expectation_specs
from ealign_dagster.orchestration.partitions import SCOPES
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, owns, write_checked
from ealign_dagster.prompts.assets import prompts
from ealign_dagster.splits.expectations import SPLIT_CHECKS


@dg.asset(
    deps=[prompts, taxonomy_file], partitions_def=SCOPES, group_name="splits", automation_condition=eager(),
    pool="duckdb", kinds={"duckdb"}, metadata=owns("splits", "split_audit"),
    check_specs=expectation_specs(SPLIT_CHECKS, "splits", SCOPES),
)  # fmt: skip
def splits(context: dg.AssetExecutionContext, ealign: EalignResource) -> Iterator:
    """One scope's training pool plus the shared evaluation set (held-out categories flagged); its data
    version is the training pool's. Its blocking GX checks recompute similarities independently on the
    new rows before they replace the old ones (a failing check keeps the previous split)."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.core.store import data_version
    from ealign_dagster.splits.build import build_split, load_prompts_with_vectors
    from ealign_dagster.splits.expectations import check_split

    scope, cfg, taxonomy = context.partition_key, ealign.cfg, load_taxonomy()
    frame, vecs = load_prompts_with_vectors(ealign.store, cfg.prompts.embedding_model, ealign.paths.cache,
                                            context.log.info)  # fmt: skip
    sizes = {s.name: s.per_category for s in cfg.prompts.sources if s.role == "eval" and s.per_category}
    rows, audit, drops = build_split(scope, frame, vecs, taxonomy, cfg.splits, sizes)
    train = rows.filter(pl.col("role") == "train")
    version = data_version(train)  # the training pool's: a new or changed benchmark retrains nothing
    context.log.info(f"{scope}: {train.height} train; dropped {drops}")
    yield from write_checked(
        context, ealign.store, {"splits": rows.with_columns(split_version=pl.lit(version)), "split_audit": audit},
        lambda staged: check_split(staged, scope, taxonomy, cfg, ealign.paths.cache), {"scope": scope},
        where={"scope": scope}, version=version, inputs={"profile.splits": ealign.version("splits")},
        preview=["role", "prompt_id", "category", "category_role", "source"],
        metadata={"dropped_by_reason": counts_md(drops, "reason")},
    )  # fmt: skip
