"""Safety rates per model with tests against the base, and the emergent-alignment table."""

import dagster as dg
import polars as pl

from ealign_dagster.judges.assets import judgments
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import md_table, owns, write

GROUP = dict(group_name="safety", pool="duckdb", kinds={"duckdb"}, automation_condition=eager())


def judgment_frame(store) -> pl.DataFrame:
    j = store.query("SELECT * EXCLUDE (raw, run_id, asset_key, partition_key, input_versions) FROM judgments")
    if j.is_empty() or not (j["model_id"] == "base").any():
        raise ValueError("judgments has no rows for the base model: materialize judgments first")
    return j


def comparable_judgments(store) -> tuple[pl.DataFrame, str]:
    """The judgments and the one evaluation-set version behind them; fails on mixed versions or
    prompt sets (see safety.scores.check_comparable)."""
    from ealign_dagster.safety.scores import check_comparable

    j = judgment_frame(store)
    evals = store.query("SELECT DISTINCT eval_version FROM generations")["eval_version"].to_list()
    check_comparable(j, evals)
    return j, evals[0]


def model_frame(store) -> pl.DataFrame:
    """model_id, adapter_id, constitution, scope of every model under test."""
    from ealign_dagster.evaluation.models import models_under_test

    rows = [m.columns() for m in models_under_test(store)]
    return pl.DataFrame(rows, schema={"model_id": pl.String, "adapter_id": pl.String, "constitution": pl.String,
                                      "scope": pl.String})  # fmt: skip


@dg.asset(deps=[judgments], **GROUP, metadata=owns("safety_scores"))
def safety_scores(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Rates per model x judge x benchmark x category with Wilson CIs, exact McNemar vs base, Holm."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.scores import safety_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    df = safety_rows(j, model_frame(ealign.store), load_taxonomy(), cfg.primary_judge, cfg.primary_family)
    versions = j.group_by("model_id", "judge").agg(pl.col("judge_version", "adapter_id", "generation_version").first())
    df = df.join(versions, on=["model_id", "judge"], how="left").with_columns(eval_version=pl.lit(eval_version))
    overall = df.filter(pl.col("category") == "all").sort("judge", "benchmark", "model_id")
    cols = ["model_id", "judge", "benchmark", "metric", "n", "rate", "delta", "delta_ci_low", "delta_ci_high", "p_holm"]
    return write(context, ealign.store, {"safety_scores": df}, metadata={"overall": md_table(overall, cols, 60)})


@dg.asset(deps=[judgments], **GROUP, metadata=owns("emergent_alignment"))
def emergent_alignment(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Per constitution x narrow scope: the change vs base on the trained, held-out and other
    categories and in over-refusal, with Tango's score CI, exact McNemar, and Holm within the
    pre-registered primary family and, separately, the exploratory rest."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.scores import emergent_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    if cfg.primary_judge not in set(j["judge"]):
        raise ValueError(f"eval.primary_judge '{cfg.primary_judge}' has no judgments; add it to eval.judges")
    rows = emergent_rows(j, model_frame(ealign.store), load_taxonomy(), cfg.primary_judge, cfg.primary_family)
    judge_version = j.filter(pl.col("judge") == cfg.primary_judge)["judge_version"][0]
    df = rows.with_columns(
        judge_version=pl.lit(judge_version), adapter_id=pl.col("model_id"), eval_version=pl.lit(eval_version)
    )
    cols = ["constitution", "scope", "category_role", "benchmark", "family", "metric", "n", "base_rate", "model_rate",
            "delta", "ci_low", "ci_high", "p_holm"]  # fmt: skip
    return write(context, ealign.store, {"emergent_alignment": df}, metadata={"table": md_table(df, cols, 80),
                                                                            "judge": cfg.primary_judge})  # fmt: skip


@dg.asset(deps=[judgments], **GROUP, metadata=owns("power"))
def power(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """The minimum detectable effect (80% power, two-sided, at the primary family's Holm-strictest
    alpha) for each primary comparison, from its paired prompts and the base model's measured rate."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.power import power_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    if cfg.primary_judge not in set(j["judge"]):
        raise ValueError(f"eval.primary_judge '{cfg.primary_judge}' has no judgments; add it to eval.judges")
    df = power_rows(j, model_frame(ealign.store), load_taxonomy(), cfg.primary_judge, cfg.primary_family)
    judge_version = j.filter(pl.col("judge") == cfg.primary_judge)["judge_version"][0]
    df = df.with_columns(judge_version=pl.lit(judge_version), eval_version=pl.lit(eval_version))
    cols = ["comparison", "n", "base_rate", "m", "alpha", "mde_down", "mde_up", "mde"]
    return write(context, ealign.store, {"power": df}, metadata={"table": md_table(df, cols, 80),
                                                               "judge": cfg.primary_judge})  # fmt: skip
