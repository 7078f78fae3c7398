"""Base models, the student's initial answers, constitutional revisions and the SFT datasets."""

from collections.abc import Iterator

import dagster as dg

from ealign_dagster.cai.expectations import SFT_CHECKS
from ealign_dagster.inputs.assets import constitution_files
from ealign_dagster.orchestration.automation import eager, on_training_data
from ealign_dagster.orchestration.checks import expectation_specs
from ealign_dagster.orchestration.partitions import CONSTITUTION_X_SCOPE, CONSTITUTIONS
from ealign_dagster.orchestration.placement import model_tags
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, owns, upstream_versions, write, write_checked
from ealign_dagster.splits.assets import splits
from ealign_dagster.splits.recheck import SFT_LEAKAGE_CHECKS

GROUP = dict(group_name="cai", pool="duckdb", automation_condition=eager())


@dg.asset(**GROUP, kinds={"pytorch"}, metadata=owns("models"))
def base_model(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """The student and teacher models as plain HF folders (offline packs converted once)."""
    from ealign_dagster.cai.base import base_model_rows

    df = base_model_rows(ealign.cfg, ealign.paths, log=context.log.info)
    return write(context, ealign.store, {"models": df}, inputs={"profile": ealign.version()})


@dg.asset(deps=[dg.AssetDep(splits, partition_mapping=dg.AllPartitionMapping()), base_model],
          **(GROUP | dict(automation_condition=on_training_data())), kinds={"pytorch", "duckdb"},
          metadata=owns("initial_responses"), op_tags=model_tags("student"))  # fmt: skip
def initial_responses(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """The helpful-only student's answer to every training prompt of every scope."""
    from ealign_dagster.cai.revise import initial_answers

    items = ealign.store.query(
        "SELECT DISTINCT s.prompt_id, p.text AS prompt FROM splits s JOIN prompts p USING (prompt_id)"
        " WHERE s.role = 'train' ORDER BY s.prompt_id"
    )
    df = initial_answers(ealign.cfg, ealign.paths, items, log=context.log.info)
    return write(context, ealign.store, {"initial_responses": df.drop("cached")},
                 inputs={"cai": ealign.version("cai")}, preview=["prompt_id", "prompt", "response"],
                 metadata={"generated": int((~df["cached"]).sum()), "from_cache": int(df["cached"].sum())})  # fmt: skip


@dg.asset(deps=[initial_responses, constitution_files], partitions_def=CONSTITUTIONS, **GROUP,
          kinds={"pytorch", "duckdb"}, metadata=owns("cai_revisions"), op_tags=model_tags("teacher"))  # fmt: skip
def cai_revisions(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Critique -> revision under one constitution (or control arm) for every initial answer, once per
    replicate seed, with the acceptance filter."""
    from ealign_dagster.cai.revise import revisions
    from ealign_dagster.judges.registry import JudgeContext

    name = context.partition_key
    items = ealign.store.query(
        "SELECT prompt_id, prompt, response AS initial FROM initial_responses ORDER BY prompt_id"
    )
    judge = JudgeContext(ealign.paths.cache, log=context.log.info)
    df, path, summary = revisions(ealign.cfg, ealign.paths, name, items, judge, log=context.log.info)
    return write(context, ealign.store, {"cai_revisions": df}, where={"constitution": name},
                 inputs={"constitution_path": str(path or ""), "cai": ealign.version("cai"),
                         "seeds": ealign.cfg.study.seeds},
                 preview=["prompt_id", "principle_id", "critique", "revision", "accepted", "reject_reason"],
                 metadata={**summary, "reject_reasons": counts_md(summary.pop("reject_reasons"), "reason")})  # fmt: skip


@dg.asset(
    deps=[dg.AssetDep(cai_revisions, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("constitution")),
          dg.AssetDep(splits, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("scope"))],
    partitions_def=CONSTITUTION_X_SCOPE, **(GROUP | dict(automation_condition=on_training_data())), kinds={"duckdb"},
    metadata=owns("sft_examples", "leakage_responses"),
    check_specs=expectation_specs(SFT_CHECKS | SFT_LEAKAGE_CHECKS, "sft_datasets", CONSTITUTION_X_SCOPE),
)  # fmt: skip
def sft_datasets(context: dg.AssetExecutionContext, ealign: EalignResource) -> Iterator:
    """Chat examples (prompt, accepted revision) for one constitution x scope, validated by its
    blocking GX checks before they replace the previous examples."""
    from ealign_dagster.cai.expectations import check_sft
    from ealign_dagster.cai.sft import sft_examples
    from ealign_dagster.core.store import data_version
    from ealign_dagster.splits.recheck import check_sft_leakage

    keys = context.partition_key.keys_by_dimension
    name, scope = keys["constitution"], keys["scope"]
    df, dropped, screened = sft_examples(ealign.cfg, ealign.paths, ealign.store, name, scope,
                                         upstream_versions(context))  # fmt: skip
    suite = lambda staged: check_sft(staged, name, scope, ealign.cfg.sft) | check_sft_leakage(  # noqa: E731
        staged, name, scope, ealign.cfg, ealign.paths.cache)  # fmt: skip
    yield from write_checked(context, ealign.store, {"sft_examples": df, "leakage_responses": screened}, suite,
                             {"partition": str(context.partition_key), "rows": df.height},
                             where={"constitution": name, "scope": scope}, inputs={"sft": ealign.version("sft")},
                             version=data_version(df) if df.height else None,
                             preview=["prompt_id", "category", "prompt", "response", "n_tokens"],
                             metadata={"left_out": counts_md(dropped, "reason")})  # fmt: skip
