"""Dagster resources: the run's profile and the DuckDB store."""

from __future__ import annotations

import os

import dagster as dg

from ealign_dagster.config import Profile, load_profile
from ealign_dagster.paths import db_path, value_version
from ealign_dagster.store import Store


class ProfileResource(dg.ConfigurableResource):
    """Which profile a run uses: a name under assets/profiles/ or a path to a YAML file."""

    name: str = "demo"

    def load(self) -> Profile:
        return load_profile(self.name)

    def version(self) -> str:
        return value_version(self.load().model_dump())


class StoreResource(dg.ConfigurableResource):
    """results.duckdb under EALIGN_HOME unless a path is given."""

    database: str = ""

    def get(self) -> Store:
        return Store(self.database or db_path())


def default_resources() -> dict:
    return {
        "profile": ProfileResource(name=os.environ.get("EALIGN_PROFILE", "demo")),
        "store": StoreResource(database=os.environ.get("EALIGN_DB", "")),
    }
