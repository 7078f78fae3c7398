"""The `prompts` table: all sources, one taxonomy, stable ids."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from ealign_dagster.core.config import PromptsConfig
from ealign_dagster.core.embeddings import embed, nearest
from ealign_dagster.core.schemas import InputError, Taxonomy
from ealign_dagster.prompts.sources import map_labels, prompt_id, read_source

PROMPT_COLUMNS = [
    "prompt_id",
    "source",
    "source_ref",
    "source_version",
    "role",
    "text",
    "category",
    "subcategory",
    "functional_category",
    "source_labels",
    "label_origin",
    "label_confidence",
    "assigned",
    "n_chars",
]


def build_prompts(cfg: PromptsConfig, taxonomy: Taxonomy, cache_dir=None, log=print) -> tuple[pd.DataFrame, dict, dict]:
    """Read every source, map labels, assign the rest by nearest labelled neighbour.

    Returns (rows, {source: version}, counts). Evaluation sources are read first, so a text that is
    both in the benchmark and in a training pool is kept once, as evaluation.
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
    for s in sorted(cfg.sources, key=lambda s: s.role != "eval"):
        data = read_source(s)
        versions[s.name] = data.version
        where = ", ".join(str(f) for f in data.files) or str(s.path)
        for raw in data.rows:
            pid = prompt_id(raw.text)
            if pid in seen:
                counts[f"{s.name}:duplicate"] += 1
                continue
            a = map_labels(s, raw, taxonomy, where)
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
                    "text": raw.text.strip(),
                    "category": a.category,
                    "subcategory": raw.subcategory,
                    "functional_category": raw.functional_category,
                    "source_labels": "|".join(raw.labels),
                    "label_origin": a.label_origin,
                    "label_confidence": a.confidence,
                    "assigned": a.category is not None,
                    "n_chars": len(raw.text.strip()),
                }
            )
        log(f"source {s.name}: {len(data.rows)} rows read (version {data.version})")
    df = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    todo = df["category"].isna().to_numpy()
    if todo.any():
        labelled = ~todo
        if not labelled.any():
            raise InputError("no source carries taxonomy labels: nothing to assign unlabeled prompts from")
        vecs = embed(df["text"].tolist(), cfg.embedding_model, cache_dir, log=log)
        idx, sim = nearest(vecs[todo], vecs[labelled])
        anchors = df.loc[labelled, "category"].to_numpy()
        df.loc[todo, "category"] = anchors[idx]
        df.loc[todo, "label_confidence"] = sim.round(4)
        df.loc[todo, "assigned"] = sim >= cfg.assign_threshold
        counts["embedding_below_threshold"] = int((sim < cfg.assign_threshold).sum())
    df["assigned"] = df["assigned"].astype(bool)
    df["label_confidence"] = df["label_confidence"].astype(float)
    return df, versions, dict(counts)
