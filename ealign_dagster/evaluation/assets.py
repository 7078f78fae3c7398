"""`eval_generations`: every model under test answers the evaluation set. One step evaluates all
models (one loaded base, adapters switched): answers of unchanged models come from the generation
cache, so a retrained adapter costs only its own generations, and the table always holds exactly the
current models."""

import dagster as dg
import polars as pl

from ealign_dagster.cai.assets import base_model
from ealign_dagster.inputs.assets import benign_prompts_file
from ealign_dagster.orchestration.automation import evaluation
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, owns, write
from ealign_dagster.splits.assets import splits
from ealign_dagster.training.assets import adapters

ALL = dg.AllPartitionMapping()
EVAL = dict(group_name="evaluation", pool="duckdb", automation_condition=evaluation())


@dg.asset(
    deps=[dg.AssetDep(adapters, partition_mapping=ALL), base_model, dg.AssetDep(splits, partition_mapping=ALL),
          benign_prompts_file],
    kinds={"pytorch", "duckdb"}, metadata=owns("generations", "adapter_canary"), **EVAL,
)  # fmt: skip
def eval_generations(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Greedy answers of the base and every adapter to the evaluation prompts and the look-alikes,
    after each adapter's canary shows it is applied."""
    from ealign_dagster.evaluation.benchmarks import eval_set
    from ealign_dagster.evaluation.generate import generations
    from ealign_dagster.evaluation.models import models_under_test

    items, eval_version = eval_set(ealign.store, ealign.cfg)
    models = models_under_test(ealign.store, ealign.cfg.study)
    df, generated, canary = generations(ealign.cfg, ealign.paths, items, models, log=context.log.info)
    return write(
        context, ealign.store, {"generations": df.with_columns(eval_version=pl.lit(eval_version)),
                                "adapter_canary": canary},
        inputs={"eval_set": eval_version, "sampling": ealign.version("eval")},
        preview=["model_id", "benchmark", "category", "prompt", "response"],
        metadata={"models": len(models), "generated": generated,
                  "by_benchmark": counts_md(dict(df.group_by("benchmark").len().iter_rows()), "benchmark")},
    )  # fmt: skip
