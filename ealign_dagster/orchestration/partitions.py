"""Partitions, defined once.

Constitutions are dynamic partitions: a file dropped into `assets/constitutions/` becomes a partition
(the `input_files` sensor, or `ealign run`, registers it) without reloading the code location."""

from __future__ import annotations

import dagster as dg

from ealign_dagster.core.schemas import constitution_paths, load_taxonomy

SCOPES = dg.StaticPartitionsDefinition(list(load_taxonomy().scopes))
CONSTITUTIONS = dg.DynamicPartitionsDefinition(name="constitution")
CONSTITUTION_X_SCOPE = dg.MultiPartitionsDefinition({"constitution": CONSTITUTIONS, "scope": SCOPES})


def control_arms() -> list[str]:
    """The trained control arms of the current profile (EALIGN_PROFILE): partitions like a constitution."""
    import os

    from ealign_dagster.core.config import load_profile

    return load_profile(os.environ.get("EALIGN_PROFILE", "demo")).study.trained_controls()


def constitution_names() -> list[str]:
    """The constitution partitions the files on disk and the profile's trained control arms call for."""
    return [p.stem for p in constitution_paths()] + [c for c in control_arms() if c not in
                                                    {p.stem for p in constitution_paths()}]  # fmt: skip


def partition_changes(known: set[str]) -> tuple[list[str], list[str]]:
    """(new, retired): files without a partition yet, partitions whose file is gone."""
    files = constitution_names()
    return [n for n in files if n not in known], sorted(known - set(files))


def sync_constitutions(instance: dg.DagsterInstance, say=None) -> list[str]:
    """Register a partition for every new constitution file (and control arm of the profile) and
    retire the partition of every removed one (later runs no longer include it; its rows stay in the tables as history, and its adapters are
    no longer models under test); returns the new ones."""
    new, retired = partition_changes(set(instance.get_dynamic_partitions(CONSTITUTIONS.name)))
    if new:
        instance.add_dynamic_partitions(CONSTITUTIONS.name, new)
    for name in retired:
        instance.delete_dynamic_partition(CONSTITUTIONS.name, name)
        if say:
            from ealign_dagster.core.config import TRAINED_CONTROLS

            why = "is no longer in study.controls" if name in TRAINED_CONTROLS else "its file is gone"
            say(f"constitution '{name}': {why}, so its partition is retired (its rows stay as history; "
                "its adapters are no longer evaluated)")  # fmt: skip
    return new
