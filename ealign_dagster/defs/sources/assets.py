"""Versioned inputs (observable, data version = content hash) and the unified `prompts` table."""

import dagster as dg
import pandas as pd

from ealign_dagster.automation import eager
from ealign_dagster.inputs import load_taxonomy, taxonomy_path
from ealign_dagster.meta import counts_md, table_metadata
from ealign_dagster.partitions import CONSTITUTIONS
from ealign_dagster.paths import file_version, value_version
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage, data_version


@dg.observable_source_asset(group_name="inputs")
def taxonomy_file() -> dg.ObserveResult:
    """assets/taxonomy.yaml: categories, scopes and the held-out map (validated on observation)."""
    from ealign_dagster.observe import taxonomy_version

    taxonomy = load_taxonomy()
    return dg.ObserveResult(
        data_version=dg.DataVersion(taxonomy_version()),
        metadata={"categories": len(taxonomy.categories), "scopes": ", ".join(taxonomy.scopes)},
    )


@dg.observable_source_asset(group_name="inputs", partitions_def=CONSTITUTIONS)
def constitution_files(context) -> dg.DataVersionsByPartition:
    """assets/constitutions/<name>.yaml, one partition per file (schema-validated): editing one
    constitution changes only its own partition's version."""
    from ealign_dagster.observe import constitution_versions

    known = set(context.instance.get_dynamic_partitions(CONSTITUTIONS.name))
    return dg.DataVersionsByPartition({k: v for k, v in constitution_versions().items() if k in known})


@dg.observable_source_asset(group_name="inputs")
def benign_prompts_file() -> dg.ObserveResult:
    """assets/benign/lookalikes.yaml: safe prompts that resemble harmful ones (over-refusal control)."""
    from ealign_dagster.inputs import load_benign
    from ealign_dagster.observe import benign_version

    data = load_benign()
    return dg.ObserveResult(
        data_version=dg.DataVersion(benign_version()),
        metadata={"prompts": len(data.prompts),
                  "by_category": counts_md(pd.Series([p.resembles for p in data.prompts]).value_counts().to_dict())},
    )


@dg.observable_source_asset(group_name="inputs")
def persona_item_bank() -> dg.ObserveResult:
    """assets/persona/items.yaml: the ethical-persona Likert items (validated on observation)."""
    from ealign_dagster.inputs import load_item_bank
    from ealign_dagster.observe import item_bank_version

    bank = load_item_bank()
    return dg.ObserveResult(
        data_version=dg.DataVersion(item_bank_version()),
        metadata={"items": len(bank.items),
                  "by_subscale": counts_md(pd.Series([i.subscale for i in bank.items]).value_counts().to_dict())},
    )


@dg.observable_source_asset(group_name="inputs")
def prompt_source_files(profile: ProfileResource) -> dg.ObserveResult:
    """The files behind the profile's prompt sources (benchmark packs, local files)."""
    from ealign_dagster.observe import source_versions

    versions = source_versions(profile.load())
    return dg.ObserveResult(
        data_version=dg.DataVersion(value_version(versions)),
        metadata={"sources": counts_md(versions, "source", "version")},
    )


@dg.asset(
    deps=[taxonomy_file, prompt_source_files],
    group_name="sources",
    pool="duckdb",
    automation_condition=eager(),
    kinds={"duckdb"},
)
def prompts(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Every prompt of every source under one taxonomy, with a stable id and where its label came from."""
    from ealign_dagster.prompts import build_prompts
    from ealign_dagster.sources import source_files

    cfg = profile.load()
    df, versions, counts = build_prompts(cfg.prompts, load_taxonomy(), log=context.log.info)
    files = pd.DataFrame(
        [
            {"source": s.name, "path": str(f), "version": versions[s.name], "file_version": file_version(f)}
            for s in cfg.prompts.sources
            for f in source_files(s)
        ],
        columns=["source", "path", "version", "file_version"],
    )
    inputs = {
        "taxonomy": file_version(taxonomy_path()),
        "profile": profile.version(),
        **{f"source:{k}": v for k, v in versions.items()},
    }
    version = data_version(df)
    lineage = Lineage(context.run_id, "prompts", "", inputs)
    store.get().replace_many([("prompts", df, {}), ("source_files", files, {})], lineage, version)
    by_origin = df.groupby(["source", "label_origin"]).size()
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["prompt_id", "source", "role", "category", "label_origin", "text"]),
            "by_source_and_origin": counts_md({f"{s} / {o}": int(n) for (s, o), n in by_origin.items()}),
            "by_category": counts_md(df.groupby("category").size().to_dict()),
            "dropped": counts_md({k: v for k, v in counts.items() if k.endswith(("duplicate", "excluded", "threshold"))}),
            "data_version": version,
        },
    )
