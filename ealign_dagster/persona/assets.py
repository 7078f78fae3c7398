"""The ethical-persona diagnostic: every model's item answers, the known-persona validation of the
instrument, subscale scores with the instrument's diagnostics and reliability, and projectability per
adapter. Scores and projectability run after the validation: it decides whether they can be read."""

import dagster as dg
import polars as pl

from ealign_dagster.cai.assets import base_model
from ealign_dagster.inputs.assets import constitution_files, persona_item_bank
from ealign_dagster.orchestration.automation import eager, evaluation
from ealign_dagster.orchestration.placement import model_tags
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import md_table, owns, write
from ealign_dagster.training.assets import adapters

ALL = dg.AllPartitionMapping()
GROUP = dict(group_name="persona", pool="duckdb", kinds={"duckdb"})


def _bank():
    from ealign_dagster.core.paths import file_version
    from ealign_dagster.core.schemas import item_bank_path, load_item_bank

    return load_item_bank(), file_version(item_bank_path())


def _items(store) -> pl.DataFrame:
    items = store.table("persona_items")
    if items.is_empty() or not (items["model_id"] == "base").any():
        raise ValueError("persona_items has no rows for the base model: materialize persona_responses first")
    return items


def _with_ids(df: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    ids = items.group_by("model_id").agg(pl.col("adapter_id", "item_bank_version").first())
    return df.drop([c for c in ("adapter_id", "item_bank_version") if c in df.columns]).join(
        ids, on="model_id", how="left"
    )


@dg.asset(
    deps=[dg.AssetDep(adapters, partition_mapping=ALL), base_model, persona_item_bank], **GROUP,
    automation_condition=evaluation(), metadata=owns("persona_items"), op_tags=model_tags("eval"),
)  # fmt: skip
def persona_responses(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Every model's answers to the persona items: Likert log-probabilities and coded replies."""
    from ealign_dagster.evaluation.models import models_under_test
    from ealign_dagster.persona.items import answer_items

    bank, bank_version = _bank()
    models = models_under_test(ealign.store, ealign.cfg.study)
    # a prompted model answers under its constitution's persona; its rows are its own (persona '')
    runs = [{"model": m, "persona": m.system, "persona_name": ""} for m in models]
    df = answer_items(ealign.cfg, ealign.paths, bank, runs, bank_version, context.log.info)
    mass = df.filter(pl.col("method") == "logprob")["option_mass"]
    return write(context, ealign.store, {"persona_items": df}, inputs={"persona": ealign.version("eval")},
                 preview=["model_id", "item_id", "method", "raw", "value", "code"],
                 metadata={"models": len(models), "logprob_option_mass": round(float(mass.mean() or 0), 3),
                           "items_without_option_mass": int((mass == 0).sum())})  # fmt: skip


@dg.asset(deps=[base_model, constitution_files, persona_item_bank], **GROUP, automation_condition=eager(),
          metadata=owns("persona_validation", "persona_validation_items", "persona_validation_scores"),
          op_tags=model_tags("eval"))  # fmt: skip
def persona_validation(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Known-persona check of the instrument: the base model system-prompted as each known persona (the
    profile's personas file, or each constitution's) should land highest on that persona's framework."""
    from ealign_dagster.core.paths import assets_dir, file_version
    from ealign_dagster.persona.scores import validation_tables

    (bank, bank_version), personas = _bank(), ealign.cfg.eval.personas
    tables = validation_tables(ealign.cfg, ealign.paths, bank, bank_version, context.log.info)
    landed = tables["persona_validation"].filter(pl.col("method") == "logprob")["lands_highest"]
    inputs = {"persona": ealign.version("eval")} | ({"personas_file": file_version(assets_dir() / personas)}
                                                    if personas else {})  # fmt: skip
    return write(context, ealign.store, tables, inputs=inputs,
                 metadata={"lands_highest_logprob": f"{int(landed.sum())}/{landed.len()}"})  # fmt: skip


@dg.asset(deps=[persona_responses, persona_validation], **GROUP, automation_condition=eager(),
          metadata=owns("persona_scores", "persona_diagnostics", "persona_reliability"))  # fmt: skip
def persona_scores(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Per model x method x subscale: mean keyed agreement (-1..1) with a bootstrap CI over items
    (resampled within keying strata), the ambiguous-reply rate and `interpretable`; beside them the
    instrument's diagnostics per run (option mass, acquiescence, plain vs reverse r) and its
    reliability per subscale (Cronbach's alpha across runs)."""
    from ealign_dagster.persona.instrument import instrument_tables
    from ealign_dagster.persona.scores import paraphrase_gaps

    items, cfg, store = _items(ealign.store), ealign.cfg.eval, ealign.store
    tables = instrument_tables(items, store.table("persona_validation_items"), store.table("persona_validation"),
                               cfg.bootstrap_resamples, cfg.seed)  # fmt: skip
    tables = {k: _with_ids(v, items) if k != "persona_reliability" else v for k, v in tables.items()}
    diag = tables["persona_diagnostics"]
    cols = ["model_id", "persona", "method", "option_mass_mean", "acquiescence", "plain_reverse_r", "interpretable"]
    return write(context, store, tables, metadata={"paraphrase_gaps": md_table(paraphrase_gaps(items), n=40),
                                                   "diagnostics": md_table(diag, cols, 40),
                                                   "not_interpretable": int((~diag["interpretable"]).sum())})  # fmt: skip


@dg.asset(deps=[persona_responses, persona_scores, constitution_files], **GROUP, automation_condition=eager(),
          metadata=owns("projectability"))  # fmt: skip
def projectability(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """Per adapter: the signature of its constitution's framework (target minus rivals) with a
    bootstrap CI, its change from base (paired over items) and the profile fit; `interpretable` only
    when the known-persona validation and the option-mass check pass (for the model and the base)."""
    from ealign_dagster.core.schemas import load_constitutions
    from ealign_dagster.persona.instrument import with_gate
    from ealign_dagster.persona.scores import projectability_rows
    from ealign_dagster.safety.assets import model_frame

    items, cfg, (bank, _) = _items(ealign.store), ealign.cfg.eval, _bank()
    rows = projectability_rows(items, model_frame(ealign.store, ealign.cfg.study), bank, load_constitutions(), cfg.bootstrap_resamples,
                               cfg.seed)  # fmt: skip
    df = _with_ids(with_gate(rows, ealign.store.table("persona_diagnostics"), base="base"), items)
    ranked = df.filter(pl.col("model_id") != "base").sort("method", "signature_change", descending=[False, True])
    cols = ["method", "constitution", "scope", "signature", "signature_change", "change_ci_low", "change_ci_high",
            "profile_fit", "interpretable"]  # fmt: skip
    return write(context, ealign.store, {"projectability": df}, metadata={"ranking": md_table(ranked, cols, 30)})
