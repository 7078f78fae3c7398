"""`eval_generations`: every model under test answers the evaluation set. One step evaluates all
models (one loaded base, adapters switched): answers of unchanged models come from the generation
cache, so a retrained adapter costs only its own generations, and the table always holds exactly the
current models."""

import dagster as dg
import polars as pl

from ealign_dagster.cai.assets import base_model
from ealign_dagster.inputs.assets import benign_prompts_file, coherence_reference_file
from ealign_dagster.orchestration.automation import evaluation
from ealign_dagster.orchestration.placement import model_tags
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md, md_table, owns, write
from ealign_dagster.splits.assets import splits
from ealign_dagster.training.assets import adapters

ALL = dg.AllPartitionMapping()
EVAL = dict(group_name="evaluation", pool="duckdb", automation_condition=evaluation())


@dg.asset(
    deps=[dg.AssetDep(adapters, partition_mapping=ALL), base_model, dg.AssetDep(splits, partition_mapping=ALL),
          benign_prompts_file],
    kinds={"pytorch", "duckdb"}, metadata=owns("generations", "adapter_canary"), op_tags=model_tags("eval"), **EVAL,
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


COHERENCE_SHOWN = ["model_id", "model_kind", "n_items", "ref_loglik", "ci_low", "ci_high", "change_vs_base",
                   "incoherent_rate", "incoherent_rate_harmful", "incoherent_rate_benign", "reason"]  # fmt: skip


@dg.asset(deps=[eval_generations, coherence_reference_file], kinds={"pytorch", "duckdb"},
          metadata=owns("coherence", "generation_coherence", "coherence_items"), op_tags=model_tags("scoring"), **EVAL)  # fmt: skip
def coherence(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Coherence next to safety: per model, the log-likelihood of reference answers to benign questions
    (bootstrap CI, paired change vs base) and the share of its answers the base model finds incoherent;
    per answer, its NLL under the base model and the `incoherent` flag."""
    from ealign_dagster.evaluation.coherence import coherence_tables
    from ealign_dagster.evaluation.models import models_under_test

    gens = ealign.store.table("generations", "ORDER BY model_id, benchmark, prompt_id")
    if gens.is_empty():
        raise ValueError("generations is empty: materialize eval_generations first")
    previous = {t: ealign.store.table_if_present(t) for t in ("generation_coherence", "coherence_items")}
    summary, per_answer, items = coherence_tables(ealign.cfg, ealign.paths, gens,
                                                  models_under_test(ealign.store, ealign.cfg.study), previous,
                                                  log=context.log.info)  # fmt: skip
    return write(
        context, ealign.store, {"coherence": summary, "generation_coherence": per_answer, "coherence_items": items},
        inputs={"reference_answers": summary["reference_version"][0], "eval": ealign.version("eval")},
        metadata={"table": md_table(summary, COHERENCE_SHOWN, 60),
                  "incoherent_answers": int(per_answer["incoherent"].sum() or 0)},
    )  # fmt: skip
