"""The one Definitions object: each stage's assets and checks, the automation, the resource."""

import importlib

import dagster as dg

from ealign_dagster.orchestration import automation
from ealign_dagster.orchestration.resources import default_resources

# Pipeline order; each stage folder holds its assets (and their checks) beside its pure logic.
STAGES = ("inputs", "prompts", "splits", "cai", "training", "evaluation", "judges", "safety", "persona", "report")


def stage_modules() -> list:
    return [importlib.import_module(f"ealign_dagster.{s}.assets") for s in STAGES]


@dg.definitions
def defs() -> dg.Definitions:
    modules = stage_modules()
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        sensors=[automation.input_files, automation.ealign_automation],
        resources=default_resources(),
    )
