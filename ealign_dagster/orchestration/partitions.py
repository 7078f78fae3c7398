"""Partitions, defined once.

Constitutions are dynamic partitions: a file dropped into `assets/constitutions/` becomes a partition
(the `input_files` sensor, or `ealign run`, registers it) without reloading the code location."""

from __future__ import annotations

import dagster as dg

from ealign_dagster.core.schemas import constitution_paths, load_taxonomy

SCOPES = dg.StaticPartitionsDefinition(list(load_taxonomy().scopes))
CONSTITUTIONS = dg.DynamicPartitionsDefinition(name="constitution")
CONSTITUTION_X_SCOPE = dg.MultiPartitionsDefinition({"constitution": CONSTITUTIONS, "scope": SCOPES})


def constitution_names() -> list[str]:
    """The constitution partitions the files on disk call for."""
    return [p.stem for p in constitution_paths()]


def sync_constitutions(instance: dg.DagsterInstance) -> list[str]:
    """Register a partition for every constitution file not yet known; returns the new ones. A
    removed file's partition stays (its history and results remain queryable)."""
    known = set(instance.get_dynamic_partitions(CONSTITUTIONS.name))
    new = [n for n in constitution_names() if n not in known]
    if new:
        instance.add_dynamic_partitions(CONSTITUTIONS.name, new)
    return new
