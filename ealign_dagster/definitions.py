"""The one Definitions object: each stage's assets and checks, the automation, the resource, the executor."""

import importlib
import os

import dagster as dg

from ealign_dagster.orchestration import automation
from ealign_dagster.orchestration.resources import default_resources

# Pipeline order; each stage folder holds its assets (and their checks) beside its pure logic.
STAGES = ("inputs", "prompts", "splits", "cai", "training", "evaluation", "judges", "safety", "persona", "report")


def stage_modules() -> list:
    return [importlib.import_module(f"ealign_dagster.{s}.assets") for s in STAGES]


def executor() -> dg.ExecutorDefinition | None:
    """Where the steps of every run (UI, automation, `ealign run --executor ray`) execute:
    EALIGN_EXECUTOR=ray on a Ray cluster, =k8s in Kubernetes jobs; unset, Dagster's default."""
    kind = os.environ.get("EALIGN_EXECUTOR", "")
    if kind == "ray":
        from ealign_dagster.orchestration.ray_runs import ray_executor

        return ray_executor()
    if kind == "k8s":
        from ealign_dagster.orchestration.placement import k8s_executor

        return k8s_executor()
    if kind:
        raise ValueError(f"EALIGN_EXECUTOR={kind}: not an executor (ray, k8s, or unset for Dagster's default)")
    return None


@dg.definitions
def defs() -> dg.Definitions:
    modules = stage_modules()
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        sensors=[automation.input_files, automation.ealign_automation],
        resources=default_resources(),
        executor=executor(),
    )
