"""The one Definitions object: each stage's assets and checks, the automation, the resource."""

import importlib

import dagster as dg

from ealign_dagster.orchestration import automation
from ealign_dagster.orchestration.resources import default_resources

# Pipeline order; each stage folder holds its assets (and checks) beside its pure logic.
STAGES = ("inputs", "prompts", "splits", "cai", "training", "evaluation", "judges", "safety", "persona", "report")
CHECKS = ("splits", "cai")


def stage_modules() -> list:
    mods = [importlib.import_module(f"ealign_dagster.{s}.assets") for s in STAGES]
    return mods + [importlib.import_module(f"ealign_dagster.{s}.checks") for s in CHECKS]


@dg.definitions
def defs() -> dg.Definitions:
    modules = stage_modules()
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        sensors=[automation.input_files, automation.ealign_automation],
        resources=default_resources(),
    )
