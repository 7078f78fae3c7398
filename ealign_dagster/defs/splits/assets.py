"""Training pools per scope and the evaluation set, filtered and audited."""

import dagster as dg

from ealign_dagster.automation import eager

from ealign_dagster.defs.sources.assets import prompts, taxonomy_file
from ealign_dagster.inputs import load_taxonomy, taxonomy_path
from ealign_dagster.meta import counts_md, table_metadata
from ealign_dagster.partitions import SCOPES
from ealign_dagster.paths import file_version
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage, data_version


@dg.asset(
    deps=[prompts, taxonomy_file],
    partitions_def=SCOPES,
    group_name="splits",
    automation_condition=eager(),
    pool="duckdb",
    kinds={"duckdb"},
)
def splits(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """One scope's training pool plus the shared evaluation set (held-out categories flagged)."""
    from ealign_dagster.splits import build_split
    from ealign_dagster.splitdata import load_prompts_with_vectors

    scope = context.partition_key
    cfg = profile.load()
    db = store.get()
    frame, vecs = load_prompts_with_vectors(db, cfg.prompts.embedding_model, log=context.log.info)
    rows, audit, drops = build_split(scope, frame, vecs, load_taxonomy(), cfg.splits)
    version = data_version(rows)
    rows["split_version"] = version
    inputs = {
        "prompts": db.version_of("prompts"),
        "taxonomy": file_version(taxonomy_path()),
        "profile": profile.version(),
        "splits_config": cfg.splits.model_dump_json(),
    }
    lineage = Lineage(context.run_id, "splits", scope, inputs)
    db.replace_many([("splits", rows, {"scope": scope}), ("split_audit", audit, {"scope": scope})], lineage, version)
    sizes = rows.groupby(["role", "category"]).size()
    context.log.info(f"{scope}: {int((rows.role == 'train').sum())} train, {int((rows.role == 'eval').sum())} eval; dropped {drops}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(rows, ["role", "prompt_id", "category", "category_role", "source"]),
            "sizes": counts_md({f"{r} / {c}": int(n) for (r, c), n in sizes.items()}, "role / category"),
            "dropped_by_reason": counts_md(drops, "reason"),
            "data_version": version,
        },
    )
