"""Judge validation on held-back human labels, every judge's verdicts on every model's answers, and
agreement between judges."""

import dagster as dg
import polars as pl

from ealign_dagster.evaluation.assets import eval_generations
from ealign_dagster.orchestration.automation import eager, evaluation
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import md_table, owns, write

GROUP = dict(group_name="judges", pool="duckdb", kinds={"duckdb"})
VALIDATION_SHOWN = ["judge", "category", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "roc_auc",
                    "roc_auc_ci_low", "roc_auc_ci_high", "kappa", "kappa_ci_low", "kappa_ci_high"]  # fmt: skip


def judge_context(context, ealign: EalignResource):
    from ealign_dagster.judges.registry import JudgeContext

    return JudgeContext(ealign.paths.cache, ealign.cfg.eval.llm_judge, ealign.paths, context.log.info)


@dg.asset(
    **GROUP, automation_condition=eager(), metadata=owns("judge_validation"),
    check_specs=[dg.AssetCheckSpec("embedding_beats_prefix", asset="judge_validation",
                                   description="The embedding judge beats the prefix list on held-back accuracy and "
                                   "ROC-AUC (warning only: a weaker judge is a finding)")],
)  # fmt: skip
def judge_validation(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """The offline judges on held-back human-labelled refusal data (pyrit): confusion counts and every
    metric with its 95% interval, overall (category 'all') and per category where the labels carry one."""
    from ealign_dagster.core.paths import file_version, pack_file
    from ealign_dagster.judges.embedding import REFUSAL_DATA
    from ealign_dagster.judges.validation import validate_judges

    df = validate_judges(judge_context(context, ealign))
    inputs = {f"{p}/{r}": file_version(pack_file(p, r)) for p, r in REFUSAL_DATA}
    v = {r["judge"]: r for r in df.filter(pl.col("category") == "all").iter_rows(named=True)}
    e, p = v["embedding"], v["prefix"]
    check = dg.AssetCheckResult(
        check_name="embedding_beats_prefix", passed=bool(e["accuracy"] > p["accuracy"] and e["roc_auc"] > p["roc_auc"]),
        severity=dg.AssetCheckSeverity.WARN, metadata={"embedding_auc": e["roc_auc"], "prefix_auc": p["roc_auc"]},
    )  # fmt: skip
    return write(
        context,
        ealign.store,
        {"judge_validation": df},
        inputs=inputs,
        metadata={"table": md_table(df, VALIDATION_SHOWN)},
        check_results=[check],
    )


@dg.asset(deps=[eval_generations], **GROUP, automation_condition=evaluation(), metadata=owns("judgments"))
def judgments(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Every configured judge on every model's answers; each verdict names its judge and version."""
    from ealign_dagster.judges.registry import judge_rows

    gens = ealign.store.table("generations", "ORDER BY model_id, benchmark, prompt_id")
    df = judge_rows(gens, ealign.cfg.eval.judges, judge_context(context, ealign))
    rates = df.group_by("judge", "benchmark").agg(pl.col("refused").mean().round(3)).sort("judge", "benchmark")
    return write(context, ealign.store, {"judgments": df}, preview=["model_id", "benchmark", "judge", "refused", "score"],
                 metadata={"refusal_rate": md_table(rates)})  # fmt: skip


@dg.asset(deps=[judgments], **GROUP, automation_condition=eager(), metadata=owns("judge_agreement"))
def judge_agreement(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Cohen's kappa (asymptotic 95% CI) and raw agreement (Wilson CI) on the refusal verdict for every pair
    of judges over the same responses: pooled, per model, per prompt role and per category."""
    from ealign_dagster.judges.agreement import judge_agreement as agreement

    evals = ealign.store.query("SELECT DISTINCT eval_version FROM generations ORDER BY 1")["eval_version"]
    df = agreement(ealign.store.table("judgments"), ",".join(evals) or None)
    pooled = df.filter(pl.col("model_id") == "all")
    cols = ["judge_a", "judge_b", "role", "category", "n", "agreement", "kappa", "kappa_ci_low", "kappa_ci_high"]
    return write(context, ealign.store, {"judge_agreement": df}, metadata={"table": md_table(pooled, cols, 40)})
