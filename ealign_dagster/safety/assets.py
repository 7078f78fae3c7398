"""Safety rates per model with tests against the base, and the emergent-alignment table."""

import dagster as dg
import polars as pl

from ealign_dagster.evaluation.assets import coherence
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


def model_frame(store, study=None) -> pl.DataFrame:
    """model_id, kind, adapter_id, constitution, scope, seed of every model under test."""
    from ealign_dagster.evaluation.models import COLUMN_TYPES, models_under_test

    rows = [m.columns() for m in models_under_test(store, study)]
    return pl.DataFrame(rows, schema={c: getattr(pl, t) for c, t in COLUMN_TYPES.items()})


@dg.asset(deps=[judgments, coherence], **GROUP, metadata=owns("safety_scores"))
def safety_scores(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Rates per model x judge x benchmark x category with Wilson CIs, exact McNemar vs base, Holm."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.scores import safety_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    models = model_frame(ealign.store, ealign.cfg.study)
    df = safety_rows(
        j,
        models,
        load_taxonomy(),
        cfg.primary_judge,
        cfg.primary_family,
        ealign.store.table_if_present("generation_coherence"),
    )
    df = df.join(models.select("model_id", "model_kind", "constitution", "seed"), on="model_id", how="left")
    versions = j.group_by("model_id", "judge").agg(pl.col("judge_version", "adapter_id", "generation_version").first())
    df = df.join(versions, on=["model_id", "judge"], how="left").with_columns(eval_version=pl.lit(eval_version))
    overall = df.filter(pl.col("category") == "all").sort("judge", "benchmark", "model_id")
    cols = ["model_id", "judge", "benchmark", "metric", "n", "rate", "delta", "delta_ci_low", "delta_ci_high", "p_holm",
            "incoherent_refusals"]  # fmt: skip
    return write(context, ealign.store, {"safety_scores": df}, metadata={"overall": md_table(overall, cols, 60)})


EMERGENT_COLUMNS = ["constitution", "scope", "seed", "reference", "category_role", "benchmark", "family", "n",
                    "reference_rate", "model_rate", "delta", "ci_low", "ci_high", "p_holm"]  # fmt: skip
POOLED_COLUMNS = ["constitution", "scope", "reference", "category_role", "benchmark", "n_seeds", "mean_delta",
                  "sd_delta", "pooled_delta", "pooled_p_holm"]  # fmt: skip


@dg.asset(deps=[judgments], **GROUP, metadata=owns("emergent_alignment", "seed_summary"))
def emergent_alignment(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Per constitution (or control arm) x narrow scope x seed: the change vs base, and vs the
    no-constitution control (difference-in-differences), on the trained, held-out and other categories
    and in over-refusal, with Tango's score CI, exact McNemar, and Holm within the pre-registered
    primary family, the control comparisons and the exploratory rest; and across seeds (seed_summary)."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.scores import emergent_rows
    from ealign_dagster.safety.seeds import seed_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    if cfg.primary_judge not in set(j["judge"]):
        raise ValueError(f"eval.primary_judge '{cfg.primary_judge}' has no judgments; add it to eval.judges")
    models = model_frame(ealign.store, ealign.cfg.study)
    rows = emergent_rows(j, models, load_taxonomy(), cfg.primary_judge, cfg.primary_family)
    seeds = seed_rows(j, models, rows, cfg.primary_judge, cfg.bootstrap_resamples, cfg.seed)
    lineage = dict(judge_version=pl.lit(j.filter(pl.col("judge") == cfg.primary_judge)["judge_version"][0]),
                   eval_version=pl.lit(eval_version))  # fmt: skip
    df = rows.with_columns(**lineage, adapter_id=pl.col("model_id")) if rows.height else rows
    return write(context, ealign.store, {"emergent_alignment": df,
                                         "seed_summary": seeds.with_columns(**lineage) if seeds.height else seeds},
                 metadata={"table": md_table(df, EMERGENT_COLUMNS, 80), "judge": cfg.primary_judge,
                           "across_seeds": md_table(seeds, POOLED_COLUMNS, 40)})  # fmt: skip


@dg.asset(deps=[judgments], **GROUP, metadata=owns("power"))
def power(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """The minimum detectable effect (80% power, two-sided, at the primary family's Holm-strictest
    alpha) for each primary comparison, from its paired prompts and the base model's measured rate."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety.power import power_rows

    cfg, j, eval_version = ealign.cfg.eval, *comparable_judgments(ealign.store)
    if cfg.primary_judge not in set(j["judge"]):
        raise ValueError(f"eval.primary_judge '{cfg.primary_judge}' has no judgments; add it to eval.judges")
    df = power_rows(
        j, model_frame(ealign.store, ealign.cfg.study), load_taxonomy(), cfg.primary_judge, cfg.primary_family
    )
    judge_version = j.filter(pl.col("judge") == cfg.primary_judge)["judge_version"][0]
    df = df.with_columns(judge_version=pl.lit(judge_version), eval_version=pl.lit(eval_version))
    cols = ["comparison", "n", "base_rate", "m", "alpha", "mde_down", "mde_up", "mde"]
    return write(context, ealign.store, {"power": df}, metadata={"table": md_table(df, cols, 80),
                                                               "judge": cfg.primary_judge})  # fmt: skip
