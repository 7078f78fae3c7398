"""Where things live: the project's versioned inputs, the run home, the offline packs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """The versioned inputs folder (`assets/`); EALIGN_ASSETS points elsewhere, e.g. in tests."""
    return Path(os.environ.get("EALIGN_ASSETS", PROJECT_ROOT / "assets")).resolve()


def home_dir() -> Path:
    """Everything a run writes: Dagster instance, results.duckdb, artifacts (EALIGN_HOME)."""
    return Path(os.environ.get("EALIGN_HOME", ".ealign")).resolve()


def db_path() -> Path:
    return home_dir() / "results.duckdb"


def artifacts_dir() -> Path:
    return home_dir() / "artifacts"


def pack_file(package: str, relpath: str) -> Path:
    """A data file inside an installed offline pack, found without importing the package
    (several packs import heavy frameworks from their __init__)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"offline pack '{package}' is not installed; run `make install` "
            f"(it installs the packs with pip --no-deps)"
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
    """sha256 over a folder's files (relative names and contents, sorted), optionally only some suffixes."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file() and (suffixes is None or p.suffix in suffixes)):
        h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
