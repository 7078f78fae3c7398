"""Per model under test: generations on the evaluation set, judgments, persona item answers.

Each step exists twice: partitioned by constitution x scope for the adapters (so editing one
constitution re-evaluates only its adapters) and once for the base model. Partitions of one run
share the loaded base; adapters are attached and switched, never reloaded."""

import dagster as dg

from ealign_dagster.automation import evaluation

from ealign_dagster.defs.cai.assets import base_model
from ealign_dagster.defs.sources.assets import benign_prompts_file, persona_item_bank
from ealign_dagster.defs.splits.assets import splits
from ealign_dagster.defs.training.assets import adapters
from ealign_dagster.meta import counts_md, table_metadata
from ealign_dagster.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage, data_version

ALL_SPLITS = dg.AssetDep(splits, partition_mapping=dg.AllPartitionMapping())


def _target(context: dg.AssetExecutionContext, store: StoreResource):
    from ealign_dagster.evalrun import model_under_test

    if context.has_partition_key:
        keys = context.partition_key.keys_by_dimension
        return model_under_test(store.get(), keys["constitution"], keys["scope"])
    return model_under_test(store.get())


def _write(context, store: StoreResource, table: str, df, where: dict, inputs: dict, version: str | None = None) -> str:
    """Replace this model's rows of `table` in one transaction, with lineage; returns the data version."""
    version = version or data_version(df)
    partition = str(context.partition_key) if context.has_partition_key else ""
    store.get().replace(table, df, where, Lineage(context.run_id, context.asset_key.to_user_string(), partition, inputs), version)
    return version


def _generations(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    from ealign_dagster.evalrun import run_generations

    mut = _target(context, store)
    df, inputs = run_generations(profile.load(), store.get(), mut, log=context.log.info)
    version = data_version(df.drop(columns=["prompt_tokens"]))
    df["generation_version"] = version
    _write(context, store, "generations", df, {"model_id": mut.model_id}, inputs, version)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["benchmark", "category", "prompt", "response"]),
            "model_id": mut.model_id,
            "by_benchmark": counts_md(df["benchmark"].value_counts().to_dict(), "benchmark"),
            "generated": inputs["generated"], "completion_tokens": int(df["completion_tokens"].sum()),
            "data_version": version,
        },
    )


def _judgments(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    from ealign_dagster.evalrun import run_judgments

    mut = _target(context, store)
    df, inputs = run_judgments(profile.load(), store.get(), mut, log=context.log.info)
    version = _write(context, store, "judgments", df, {"model_id": mut.model_id}, inputs)
    harmful = df[df["benchmark"] != "benign"]
    rates = harmful.groupby("judge")["refused"].mean().to_dict()
    benign = df[df["benchmark"] == "benign"].groupby("judge")["refused"].mean().to_dict()
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["benchmark", "category", "judge", "refused", "score"]),
            "refusal_rate_harmful": counts_md({k: round(v, 3) for k, v in rates.items()}, "judge", "refusal rate"),
            "refusal_rate_benign": counts_md({k: round(v, 3) for k, v in benign.items()}, "judge", "refusal rate"),
            "judge_versions": dg.MetadataValue.json(inputs["judges"]),
            "data_version": version,
        },
    )


def _persona(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    from ealign_dagster.evalrun import run_persona

    mut = _target(context, store)
    df, inputs = run_persona(profile.load(), store.get(), mut, log=context.log.info)
    version = _write(context, store, "persona_items", df, {"model_id": mut.model_id, "persona": ""}, inputs)
    means = df[df["paraphrase_of"].isna()].groupby(["method", "subscale"])["value"].mean().round(3)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["item_id", "method", "raw", "value", "code"]),
            "subscale_means": counts_md({f"{m} / {s}": v for (m, s), v in means.items()}, "method / subscale", "mean"),
            "logprob_option_mass": round(float(df.loc[df["method"] == "logprob", "option_mass"].mean()), 3),
            "data_version": version,
        },
    )


ADAPTER = dict(partitions_def=CONSTITUTION_X_SCOPE, group_name="evaluation", pool="duckdb", automation_condition=evaluation())
BASE = dict(group_name="evaluation", pool="duckdb", automation_condition=evaluation())


@dg.asset(deps=[adapters, ALL_SPLITS, benign_prompts_file], kinds={"pytorch", "duckdb"}, **ADAPTER)
def eval_generations(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """One adapter's greedy answers to the evaluation prompts and the benign look-alikes."""
    return _generations(context, profile, store)


@dg.asset(deps=[base_model, ALL_SPLITS, benign_prompts_file], kinds={"pytorch", "duckdb"}, **BASE)
def base_eval_generations(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """The base model's greedy answers to the evaluation prompts and the benign look-alikes."""
    return _generations(context, profile, store)


@dg.asset(deps=[eval_generations], kinds={"duckdb"}, **ADAPTER)
def judgments(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Every configured judge on one adapter's answers; each verdict names its judge and version."""
    return _judgments(context, profile, store)


@dg.asset(deps=[base_eval_generations], kinds={"duckdb"}, **BASE)
def base_judgments(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Every configured judge on the base model's answers."""
    return _judgments(context, profile, store)


@dg.asset(deps=[adapters, persona_item_bank], kinds={"pytorch", "duckdb"}, **ADAPTER)
def persona_responses(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """One adapter's answers to the persona items: Likert log-probabilities and coded replies."""
    return _persona(context, profile, store)


@dg.asset(deps=[base_model, persona_item_bank], kinds={"pytorch", "duckdb"}, **BASE)
def base_persona_responses(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """The base model's answers to the persona items."""
    return _persona(context, profile, store)
