"""`splits[scope]`: one scope's training pool plus the shared evaluation set (held-out categories
flagged), every filter drop in `split_audit`."""

from collections.abc import Iterator

import dagster as dg

from ealign_dagster.inputs.assets import taxonomy_file
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.checks import expectation_specs
from ealign_dagster.orchestration.partitions import SCOPES
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, md_table, owns, write_checked
from ealign_dagster.prompts.assets import prompts
from ealign_dagster.splits.expectations import SPLIT_CHECKS

RECALL_SHOWN = ["style", "n_probes", "recall", "recall_ci_low", "recall_ci_high", "n_negatives", "false_positive_rate"]


@dg.asset(
    deps=[prompts, taxonomy_file], partitions_def=SCOPES, group_name="splits", automation_condition=eager(),
    pool="duckdb", kinds={"duckdb"}, metadata=owns("splits", "split_audit", "leakage_probes", "leakage_recall"),
    check_specs=expectation_specs(SPLIT_CHECKS, "splits", SCOPES),
)  # fmt: skip
def splits(context: dg.AssetExecutionContext, ealign: EalignResource) -> Iterator:
    """One scope's training pool plus the shared evaluation set (held-out categories flagged); its data
    version is the training pool's. Its blocking GX checks recompute similarities independently on the
    new rows before they replace the old ones (a failing check keeps the previous split). The leakage
    filter's recall on the shipped probe set goes to leakage_probes / leakage_recall."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.splits.build import scope_tables
    from ealign_dagster.splits.expectations import check_split

    scope, cfg, taxonomy = context.partition_key, ealign.cfg, load_taxonomy()
    tables, version, drops, probes_version = scope_tables(ealign.store, scope, cfg, taxonomy, ealign.paths.cache,
                                                          context.log.info)  # fmt: skip
    yield from write_checked(
        context, ealign.store, tables,
        lambda staged: check_split(staged, scope, taxonomy, cfg, ealign.paths.cache), {"scope": scope},
        where={"scope": scope}, version=version,
        inputs={"profile.splits": ealign.version("splits"), "leakage_probes": probes_version},
        preview=["role", "prompt_id", "category", "category_role", "source"],
        metadata={"dropped_by_reason": counts_md(drops, "reason"),
                  "leakage_recall": md_table(tables["leakage_recall"], RECALL_SHOWN)},
    )  # fmt: skip
