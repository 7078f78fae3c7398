"""The `prompts` table: all sources, one taxonomy, stable ids."""

from __future__ import annotations

from collections import Counter

import polars as pl

from ealign_dagster.core.config import PromptsConfig
from ealign_dagster.core.embeddings import embed, nearest
from ealign_dagster.core.schemas import InputError, Taxonomy
from ealign_dagster.prompts.sources import map_labels, prompt_id, read_source, unmapped_rule

PROMPT_SCHEMA = {
    "prompt_id": pl.String,
    "source": pl.String,
    "source_ref": pl.String,
    "source_version": pl.String,
    "role": pl.String,
    "text": pl.String,
    "category": pl.String,
    "subcategory": pl.String,
    "functional_category": pl.String,
    "source_labels": pl.String,
    "kind": pl.String,
    "reference": pl.Boolean,
    "label_origin": pl.String,
    "label_confidence": pl.Float64,
    "assigned": pl.Boolean,
    "n_chars": pl.Int64,
    "control_chars_removed": pl.Int64,
}
CONTROL = {c: None for c in range(32) if chr(c) not in "\t\n\r"} | {0x7F: None}  # NUL and other C0 controls, DEL


def clean_text(text: str) -> tuple[str, int]:
    """The prompt without NUL and other control characters (tab and newlines stay), stripped, and how
    many characters were removed: they reach no model and are counted, never silently trained on."""
    clean = text.translate(CONTROL)
    return clean.strip(), len(text) - len(clean)


def build_prompts(cfg: PromptsConfig, taxonomy: Taxonomy, cache_dir=None, log=print) -> tuple[pl.DataFrame, dict, dict]:
    """Read every source, map labels, assign the rest by nearest labelled neighbour.

    Returns (rows, {source: version}, counts). The reference benchmarks are read first, then the
    training sources, then every other benchmark and over-refusal set: a text that is in two sources
    is kept once, under the first, so a benchmark added later never takes a training prompt away.
    Unlabelled prompts take the category of their nearest labelled prompt of a training source or a
    reference benchmark (`reference` column), never of another benchmark.
    """
    names = [s.name for s in cfg.sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"profile prompts.sources: duplicate source names {dup}")
    for s in cfg.sources:
        if s.category and s.category not in taxonomy.categories:
            raise InputError(f"profile prompts.sources[{s.name}]: field 'category': unknown category '{s.category}'")
    counts: Counter = Counter()
    versions, rows, seen = {}, [], set()
    reference = set(cfg.reference)
    for s in sorted(cfg.sources, key=lambda s: 0 if s.name in reference else 1 if s.role == "train" else 2):
        data = read_source(s)
        versions[s.name] = data.version
        where = ", ".join(str(f) for f in data.files) or str(s.path)
        for raw in data.rows:
            text, removed = clean_text(raw.text)
            counts[f"{s.name}:control_chars_removed"] += removed
            pid = prompt_id(text)
            if pid in seen:
                counts[f"{s.name}:duplicate"] += 1
                continue
            a = map_labels(s, raw, taxonomy, where)
            for label in a.unmapped:
                counts[f"{s.name}:unmapped:{label}"] += 1
            if a.label_origin == "excluded":
                counts[f"{s.name}:excluded"] += 1
                continue
            seen.add(pid)
            counts[f"{s.name}:{a.label_origin}"] += 1
            rows.append(
                {
                    "prompt_id": pid,
                    "source": s.name,
                    "source_ref": raw.source_ref,
                    "source_version": data.version,
                    "role": s.role,
                    "text": text,
                    "category": a.category,
                    "subcategory": raw.subcategory,
                    "functional_category": raw.functional_category,
                    "source_labels": "|".join(raw.labels),
                    "kind": raw.kind,
                    "reference": s.name in reference and s.role == "eval",
                    "label_origin": a.label_origin,
                    "label_confidence": a.confidence,
                    "assigned": a.category is not None,
                    "n_chars": len(text),
                    "control_chars_removed": removed,
                }
            )
        log(f"source {s.name}: {len(data.rows)} rows read (version {data.version})")
    df = pl.DataFrame(rows, schema=PROMPT_SCHEMA, strict=False)
    todo = df["category"].is_null().to_numpy()
    if todo.any():
        if todo.all():
            raise InputError("no source carries taxonomy labels: nothing to assign unlabeled prompts from")
        labelled = ~todo & df.select((pl.col("role") == "train") | pl.col("reference")).to_series().to_numpy()
        if not labelled.any():
            raise InputError("no training source or reference benchmark carries taxonomy labels: nothing to "
                             "assign unlabeled prompts from (see prompts.reference)")  # fmt: skip
        vecs = embed(df["text"].to_list(), cfg.embedding_model, cache_dir, log=log)
        idx, sim = nearest(vecs[todo], vecs[labelled])
        near = pl.DataFrame(
            {
                "prompt_id": df.filter(todo)["prompt_id"],
                "near": df.filter(labelled)["category"].gather(idx),
                "sim": sim.round(4).astype(float),
                "above": sim >= cfg.assign_threshold,
            }
        )
        df = (
            df.join(near, on="prompt_id", how="left", maintain_order="left")
            .with_columns(
                category=pl.coalesce("category", "near"),
                label_confidence=pl.coalesce("sim", "label_confidence"),
                assigned=pl.coalesce("above", "assigned"),
            )
            .drop("near", "sim", "above")
        )
        counts["embedding_below_threshold"] = int((sim < cfg.assign_threshold).sum())
    return df, versions, dict(counts)


def unmapped_labels(cfg: PromptsConfig, taxonomy: Taxonomy, counts: dict) -> pl.DataFrame:
    """The `source_labels` rows: per source, each label that is neither mapped nor a category, the rule
    that applied to it (embed or drop) and how many rows carried it."""
    rules = {s.name: unmapped_rule(s, taxonomy) for s in cfg.sources}
    rows = [{"source": source, "label": label, "rule": rules[source], "rows": n}
            for key, n in sorted(counts.items()) if key.count(":unmapped:")
            for source, label in [key.split(":unmapped:", 1)]]  # fmt: skip
    return pl.DataFrame(rows, schema={"source": pl.String, "label": pl.String, "rule": pl.String, "rows": pl.Int64})
