"""The one resource: which profile a run uses and which home it writes to, read once per step."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import PrivateAttr

from ealign_dagster.core.config import Profile, load_profile
from ealign_dagster.core.paths import Home, value_version
from ealign_dagster.core.store import Store


class EalignResource(dg.ConfigurableResource):
    """profile: a name under assets/profiles/ or a path to a YAML file; home: the run home;
    shared_cache: a cache folder shared across homes (optional)."""

    profile: str = "demo"
    home: str = ".ealign"
    shared_cache: str = ""

    _loaded: Profile | None = PrivateAttr(default=None)

    @property
    def cfg(self) -> Profile:
        """The profile, loaded and validated once per step."""
        if self._loaded is None:
            self._loaded = load_profile(self.profile)
        return self._loaded

    @property
    def paths(self) -> Home:
        return Home.at(self.home, self.shared_cache or None)

    @property
    def store(self) -> Store:
        return Store(self.paths.db)

    def version(self, section: str | None = None) -> str:
        """Content hash of the profile, or of one of its sections (e.g. 'splits')."""
        data = self.cfg.model_dump()
        return value_version(data[section] if section else data)


def default_resources() -> dict:
    """Resources from the environment the CLI (or a test) set up for Dagster: read here, once."""
    return {
        "ealign": EalignResource(
            profile=os.environ.get("EALIGN_PROFILE", "demo"),
            home=os.environ.get("EALIGN_HOME", ".ealign"),
            shared_cache=os.environ.get("EALIGN_CACHE", ""),
        )
    }
