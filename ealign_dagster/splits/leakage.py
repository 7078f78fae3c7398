"""Leakage evidence for the narrow scopes' held-out categories.

- Probes (assets/leakage_probes.yaml): held-out-category paraphrases and trained-category negatives,
  scored by the filter's own functions (build.held_out_scores, build.leaking), so `leakage_probes` and
  `leakage_recall` measure the filter that built the split: recall with its Wilson interval and the
  false-positive rate on the negatives.
- SFT responses are screened with the same scores and thresholds as training prompts
  (screen_responses, table `leakage_responses`), long ones passage by passage.
- The blocking checks recompute both apart from the filter (splits/recheck.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pydantic

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import InputError, NonEmpty, Taxonomy, _Strict, read_yaml

STYLES = ("direct", "oblique")
PROBE_SCHEMA = {
    "scope": pl.String,
    "held_out": pl.String,
    "probe_id": pl.String,
    "category": pl.String,
    "probe_role": pl.String,  # held_out (the filter should flag it) | trained (it should not)
    "style": pl.String,
    "text": pl.String,
    "held_out_similarity": pl.Float64,
    "held_out_probability": pl.Float64,
    "flagged": pl.Boolean,
    "flagged_by": pl.String,  # held_out_similarity | held_out_classifier, as split_audit's reasons
    "leakage_threshold": pl.Float64,
    "leakage_probability": pl.Float64,
    "probes_version": pl.String,
}
RECALL_SCHEMA = {
    "scope": pl.String,
    "held_out": pl.String,
    "style": pl.String,  # all | direct | oblique
    "n_probes": pl.Int64,
    "n_flagged": pl.Int64,
    "recall": pl.Float64,
    "recall_ci_low": pl.Float64,
    "recall_ci_high": pl.Float64,
    "n_negatives": pl.Int64,
    "n_false_positives": pl.Int64,
    "false_positive_rate": pl.Float64,
    "fpr_ci_low": pl.Float64,
    "fpr_ci_high": pl.Float64,
    "precision": pl.Float64,
    "auc_probability": pl.Float64,
    "auc_similarity": pl.Float64,
    "leakage_threshold": pl.Float64,
    "leakage_probability": pl.Float64,
    "probes_version": pl.String,
}
SCREEN_SCHEMA = {
    "constitution": pl.String,
    "scope": pl.String,
    "seed": pl.Int64,  # the replicate whose response it is
    "prompt_id": pl.String,
    "held_out": pl.String,
    "held_out_similarity": pl.Float64,
    "held_out_probability": pl.Float64,
    "n_passages": pl.Int64,
    "flagged": pl.Boolean,
    "flagged_by": pl.String,
    "action": pl.String,  # dropped | kept (splits.leakage_action); NULL when not flagged
    "leakage_threshold": pl.Float64,
    "leakage_probability": pl.Float64,
}
# Long responses are screened in half-overlapping windows of 64 words (no 32-word span falls between
# two), about a request's length: the anchors and the classifier are requests, and all-MiniLM-L6-v2
# reads only 256 word pieces. A held-out sentence after 300 words of preamble scored p = 0.32 as one
# 128-word window and 0.72 in a 64-word one; the demo's 90 narrow responses (all under 64 words) are
# one passage each.
PASSAGE_WORDS, PASSAGE_STRIDE = 64, 32


# --- the probe set -------------------------------------------------------------------------------


class Probe(_Strict):
    id: NonEmpty
    category: NonEmpty
    style: Literal["direct", "oblique"]
    text: NonEmpty


def probes_path() -> Path:
    from ealign_dagster.core.paths import assets_dir

    return assets_dir() / "leakage_probes.yaml"


def load_probes(path: Path | None = None, taxonomy: Taxonomy | None = None) -> pl.DataFrame:
    """The probe set as rows (probe_id, category, style, text); a bad row fails in one line naming the
    file and the row."""
    from ealign_dagster.core.schemas import load_taxonomy

    path = Path(path or probes_path())
    data = read_yaml(path)
    stray = sorted(set(data) - {"version", "probes"})
    if stray:
        raise InputError(f"{path}: unknown top-level field(s) {stray} (expected version, probes)")
    rows = data.get("probes")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: field 'probes': expected a non-empty list of {{id, category, style, text}}")
    taxonomy = taxonomy or load_taxonomy()
    out, ids, texts = [], {}, {}
    for i, raw in enumerate(rows):
        where = f"{path}: probes[{i}]" + (f" ({raw['id']})" if isinstance(raw, dict) and raw.get("id") else "")
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected a mapping with id, category, style, text")
        try:
            p = Probe.model_validate(raw)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            raise InputError(f"{where}: field '{'.'.join(map(str, err['loc']))}': {err['msg']}") from None
        if p.category not in taxonomy.categories:
            raise InputError(f"{where}: field 'category': '{p.category}' is not a taxonomy category")
        if p.id in ids:
            raise InputError(f"{where}: duplicate id (also probes[{ids[p.id]}])")
        key = " ".join(p.text.lower().split())
        if key in texts:
            raise InputError(f"{where}: same text as probes[{texts[key]}]")
        ids[p.id], texts[key] = i, i
        out.append({"probe_id": p.id, "category": p.category, "style": p.style, "text": p.text})
    return pl.DataFrame(
        out, schema={"probe_id": pl.String, "category": pl.String, "style": pl.String, "text": pl.String}
    )


def probe_rows(
    scope: str,
    probes: pl.DataFrame,
    probe_vecs: np.ndarray,
    prompts: pl.DataFrame,
    vecs: np.ndarray,
    taxonomy: Taxonomy,
    cfg: SplitsConfig,
    version: str,
) -> pl.DataFrame:
    """Rows of `leakage_probes` for one scope: its held-out category's probes (which the filter should
    flag) and its own categories' (which it should not), with the filter's scores and decision."""
    spec = taxonomy.scopes[scope]
    if spec.held_out is None:
        return pl.DataFrame(schema=PROBE_SCHEMA)
    roles = {**{c: "trained" for c in spec.categories}, spec.held_out: "held_out"}
    mine = probes["category"].is_in(list(roles)).to_numpy()
    from ealign_dagster.splits.build import held_out_scores, leaking

    sim, p = held_out_scores(prompts, vecs, spec.held_out, probe_vecs[mine])
    near, looks = leaking(sim, p, cfg)
    by = np.where(near, "held_out_similarity", np.where(looks, "held_out_classifier", None))
    return (
        probes.filter(pl.Series(mine))
        .with_columns(
            scope=pl.lit(scope),
            held_out=pl.lit(spec.held_out),
            probe_role=pl.col("category").replace_strict(roles, return_dtype=pl.String),
            held_out_similarity=pl.Series(sim, dtype=pl.Float64),
            held_out_probability=pl.Series(p, dtype=pl.Float64),
            flagged=pl.Series(near | looks, dtype=pl.Boolean),
            flagged_by=pl.Series(by.tolist(), dtype=pl.String),
            leakage_threshold=pl.lit(cfg.leakage_threshold, dtype=pl.Float64),
            leakage_probability=pl.lit(cfg.leakage_probability, dtype=pl.Float64),
            probes_version=pl.lit(version),
        )
        .select(list(PROBE_SCHEMA))
    )


def _auc(pos: pl.DataFrame, neg: pl.DataFrame, column: str) -> float | None:
    """Probability that a held-out probe scores above a negative (ties count half); None without both."""
    if pos.is_empty() or neg.is_empty():
        return None
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([pos[column].to_numpy(), neg[column].to_numpy()])
    return float(roc_auc_score(np.r_[np.ones(pos.height), np.zeros(neg.height)], scores))


def recall_table(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows of `leakage_recall`: per scope and probe style (all, direct, oblique), the share of
    held-out probes the filter flags (recall) and of negatives it flags (false-positive rate), each
    with its 95% Wilson interval, plus the AUC of either score alone."""
    from ealign_dagster.core.stats import wilson

    def share(k: int, n: int) -> tuple:
        return (k / n, *wilson(k, n)) if n else (None, None, None)

    out = []
    for (scope, held_out), g in rows.group_by(["scope", "held_out"], maintain_order=True):
        for style in ("all", *STYLES):
            s = g if style == "all" else g.filter(pl.col("style") == style)
            pos, neg = s.filter(pl.col("probe_role") == "held_out"), s.filter(pl.col("probe_role") == "trained")
            tp, fp = int(pos["flagged"].sum()), int(neg["flagged"].sum())
            recall, r_lo, r_hi = share(tp, pos.height)
            fpr, f_lo, f_hi = share(fp, neg.height)
            out.append(
                dict(
                    scope=scope, held_out=held_out, style=style, n_probes=pos.height, n_flagged=tp, recall=recall,
                    recall_ci_low=r_lo, recall_ci_high=r_hi, n_negatives=neg.height, n_false_positives=fp,
                    false_positive_rate=fpr, fpr_ci_low=f_lo, fpr_ci_high=f_hi,
                    precision=tp / (tp + fp) if tp + fp else None,
                    auc_probability=_auc(pos, neg, "held_out_probability"),
                    auc_similarity=_auc(pos, neg, "held_out_similarity"),
                    leakage_threshold=g["leakage_threshold"][0], leakage_probability=g["leakage_probability"][0],
                    probes_version=g["probes_version"][0],
                )
            )  # fmt: skip
    return pl.DataFrame(out, schema=RECALL_SCHEMA)


def measure_probes(
    scope: str,
    prompts: pl.DataFrame,
    vecs: np.ndarray,
    taxonomy: Taxonomy,
    cfg: SplitsConfig,
    model: str,
    cache_dir=None,
    path: Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """`leakage_probes` and `leakage_recall` rows of one scope, and the probe file's version."""
    from ealign_dagster.core.embeddings import embed
    from ealign_dagster.core.paths import file_version

    path = Path(path or probes_path())
    probes = load_probes(path, taxonomy)
    version = file_version(path)
    rows = probe_rows(scope, probes, embed(probes["text"].to_list(), model, cache_dir), prompts, vecs, taxonomy,
                      cfg, version)  # fmt: skip
    return rows, recall_table(rows), version


# --- SFT responses -------------------------------------------------------------------------------


def passages(text: str) -> list[str]:
    """The text itself, or half-overlapping windows of PASSAGE_WORDS words when it is longer."""
    words = text.split()
    if len(words) <= PASSAGE_WORDS:
        return [text]
    starts = range(0, len(words) - PASSAGE_WORDS + PASSAGE_STRIDE, PASSAGE_STRIDE)
    return [" ".join(words[s : s + PASSAGE_WORDS]) for s in starts]


def _per_text_max(texts: list[str], score, model: str, cache_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """score(passage embeddings) -> (similarity, probability), maximised over each text's passages."""
    from ealign_dagster.core.embeddings import embed

    parts = [passages(t) for t in texts]
    owner = np.repeat(np.arange(len(texts)), [len(p) for p in parts])
    sim_p, prob_p = score(embed([x for p in parts for x in p], model, cache_dir))
    sim, prob = np.full(len(texts), -np.inf), np.zeros(len(texts))
    np.maximum.at(sim, owner, sim_p)
    np.maximum.at(prob, owner, prob_p)
    return sim, prob, np.array([len(p) for p in parts])


def screen_responses(
    examples: pl.DataFrame, scope: str, store, cfg, cache_dir=None, seed: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Screen a narrow scope's SFT responses as the filter screens its training prompts (same scores,
    same thresholds). examples: sft rows (constitution, scope, prompt_id, response, ...) of replicate
    `seed`; cfg: the profile. Returns the examples left (flagged ones dropped under splits.leakage_action = drop), the
    `leakage_responses` rows of every screened response, and the count under its left-out reason."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.splits.build import held_out_scores, leaking, load_prompts_with_vectors

    held_out = load_taxonomy().held_out(scope)
    if held_out is None or examples.is_empty():
        return examples, pl.DataFrame(schema=SCREEN_SCHEMA), {}
    model, split_cfg = cfg.prompts.embedding_model, cfg.splits
    prompts, vecs = load_prompts_with_vectors(store, model, cache_dir)
    sim, p, n = _per_text_max(examples["response"].to_list(), lambda q: held_out_scores(prompts, vecs, held_out, q),
                              model, cache_dir)  # fmt: skip
    near, looks = leaking(sim, p, split_cfg)
    flagged = near | looks
    drop = split_cfg.leakage_action == "drop"
    screened = examples.select("constitution", "scope", "prompt_id").with_columns(
        seed=pl.lit(seed, dtype=pl.Int64),
        held_out=pl.lit(held_out),
        held_out_similarity=pl.Series(sim, dtype=pl.Float64),
        held_out_probability=pl.Series(p, dtype=pl.Float64),
        n_passages=pl.Series(n, dtype=pl.Int64),
        flagged=pl.Series(flagged, dtype=pl.Boolean),
        flagged_by=pl.Series(np.where(near, "held_out_similarity", np.where(looks, "held_out_classifier", None)).tolist(),
                             dtype=pl.String),
        action=pl.Series(np.where(flagged, "dropped" if drop else "kept", None).tolist(), dtype=pl.String),
        leakage_threshold=pl.lit(split_cfg.leakage_threshold, dtype=pl.Float64),
        leakage_probability=pl.lit(split_cfg.leakage_probability, dtype=pl.Float64),
    )  # fmt: skip
    kept = examples.filter(pl.Series(~flagged)) if drop else examples
    reason = "response_leakage" if drop else "response_leakage_kept"  # as splits counts held_out_leakage_kept
    return kept, screened.select(list(SCREEN_SCHEMA)), {reason: int(flagged.sum())}
