"""`prompts`: every prompt of every source under one taxonomy, with a stable id and where its label
came from; `source_files` records the files behind each source's version."""

import dagster as dg

from ealign_dagster.inputs.assets import prompt_source_files, taxonomy_file
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, md_table, owns, write


@dg.asset(
    deps=[taxonomy_file, prompt_source_files], group_name="prompts", pool="duckdb", automation_condition=eager(),
    kinds={"duckdb"}, metadata=owns("prompts", "source_files", "source_labels"),
)  # fmt: skip
def prompts(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Every prompt of every source under one taxonomy, with a stable id and its label's origin."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.prompts.build import build_prompts, unmapped_labels
    from ealign_dagster.prompts.sources import source_file_rows

    cfg, taxonomy = ealign.cfg.prompts, load_taxonomy()
    rows, versions, counts = build_prompts(cfg, taxonomy, ealign.paths.cache, log=context.log.info)
    files, labels = source_file_rows(cfg, versions), unmapped_labels(cfg, taxonomy, counts)
    dropped = {k: v for k, v in counts.items() if k.endswith(("duplicate", "excluded", "threshold"))}
    return write(
        context, ealign.store, {"prompts": rows, "source_files": files, "source_labels": labels},
        inputs={"profile.prompts": ealign.version("prompts"), **{f"source:{k}": v for k, v in versions.items()}},
        preview=["prompt_id", "source", "role", "category", "label_origin", "text"],
        metadata={"by_category": counts_md(dict(rows.group_by("category").len().iter_rows())),
                  "dropped": counts_md(dropped), "unmapped_labels": md_table(labels)},
    )  # fmt: skip
