"""The data versions of the input files under `assets/` (and the prompt sources' files): one function
used by the observable source assets and by the `input_files` sensor, so both report the same
version for the same bytes."""

from __future__ import annotations

from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import file_version, tree_version, value_version


def taxonomy_version() -> str:
    from ealign_dagster.core.schemas import load_taxonomy, taxonomy_path

    load_taxonomy()
    return file_version(taxonomy_path())


def constitution_versions() -> dict[str, str]:
    """Each constitution file's version, and the trained control arms' (the no-constitution file's; the
    initial-answer arm has no file: a constant), so that every `constitution` partition is observed."""
    from ealign_dagster.core.schemas import (
        INITIAL_ANSWERS,
        NO_CONSTITUTION,
        arm_path,
        constitution_paths,
        load_arm,
        load_constitutions,
    )

    load_constitutions()  # a broken file raises, naming the file and field
    load_arm(NO_CONSTITUTION)
    controls = {
        NO_CONSTITUTION: file_version(arm_path(NO_CONSTITUTION)),
        INITIAL_ANSWERS: value_version(INITIAL_ANSWERS),
    }
    return controls | {p.stem: file_version(p) for p in constitution_paths()}


def benign_version() -> str:
    from ealign_dagster.core.schemas import benign_path, load_benign

    load_benign()
    return file_version(benign_path())


def item_bank_version() -> str:
    from ealign_dagster.core.schemas import item_bank_path, load_item_bank

    load_item_bank()
    return file_version(item_bank_path())


def reference_answers_version() -> str:
    """The coherence step's reference answers (validated, as the step reads them)."""
    from ealign_dagster.evaluation.coherence import reference_items

    return reference_items()[1]


def source_versions(profile: Profile) -> dict[str, str]:
    from ealign_dagster.prompts.sources import source_files

    return {s.name: tree_version(source_files(s)) for s in profile.prompts.sources}


def prompt_sources_version(profile: Profile) -> str:
    return value_version(source_versions(profile))


def all_versions(profile: Profile) -> dict[tuple[str, str | None], str]:
    """{(observable asset, partition or None): data version} for every input."""
    out: dict[tuple[str, str | None], str] = {
        ("taxonomy_file", None): taxonomy_version(),
        ("benign_prompts_file", None): benign_version(),
        ("persona_item_bank", None): item_bank_version(),
        ("coherence_reference_file", None): reference_answers_version(),
        ("prompt_source_files", None): prompt_sources_version(profile),
    }
    for name, v in constitution_versions().items():
        out[("constitution_files", name)] = v
    return out
