"""The independent recheck behind the blocking leakage checks: each narrow scope's training prompts and
SFT prompts/responses scored apart from the filter, with their own queries for the held-out-category
prompts and the classifier's labels, their own cosine and their own classifier fit. They share with
the filter the embedding model, the classifier's settings and the passages (splits/leakage.py)."""

from __future__ import annotations

import numpy as np

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import Taxonomy
from ealign_dagster.splits.leakage import passages

SPLIT_LEAKAGE_CHECK = "no_held_out_leakage_rechecked"
SFT_LEAKAGE_CHECKS = {
    "sft_no_held_out_leakage": "no prompt or response of a narrow scope's SFT examples reaches leakage_threshold "
    "or leakage_probability, recomputed apart from the filter",
}

# The held-out category's prompts of the training sources and the reference benchmarks, and the
# reference benchmarks' labels: the filter's definitions, queried from the stored prompts.
ANCHORS_SQL = (
    "SELECT text FROM prompts WHERE category = ? AND assigned AND (role = 'train' OR coalesce(reference, false))"
    " ORDER BY prompt_id"
)
LABELS_SQL = (
    "SELECT text, category FROM prompts WHERE coalesce(reference, false) AND category IS NOT NULL ORDER BY prompt_id"
)


def recheck_scores(store, held_out: str | None, texts: list[str], model: str, cache_dir=None):
    """Each text's highest cosine to a held-out-category prompt and the held-out probability of a
    classifier fit here, maximised over its passages; computed from the stored prompts without the
    filter's code."""
    from sklearn.linear_model import LogisticRegression

    from ealign_dagster.core.embeddings import embed
    from ealign_dagster.splits.build import LEAKAGE_CLASSIFIER

    zeros = np.zeros(len(texts))
    if held_out is None or not texts:
        return zeros, zeros.copy()

    def unit(x: list[str]) -> np.ndarray:
        v = np.asarray(embed(x, model, cache_dir), dtype=np.float64)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    spans, flat = [], []
    for t in texts:
        parts = passages(t)
        spans.append((len(flat), len(flat) + len(parts)))
        flat.extend(parts)
    q = unit(flat)
    anchors = store.query(ANCHORS_SQL, [held_out])["text"].to_list()
    sim = np.einsum("qd,ad->qa", q, unit(anchors)).max(axis=1) if anchors else np.zeros(len(flat))
    labels = store.query(LABELS_SQL)
    cats = labels["category"].to_list()
    prob = np.zeros(len(flat))
    if held_out in cats and len(set(cats)) > 1:
        clf = LogisticRegression(**LEAKAGE_CLASSIFIER).fit(unit(labels["text"].to_list()), cats)
        prob = clf.predict_proba(q)[:, list(clf.classes_).index(held_out)]
    return np.array([sim[a:b].max() for a, b in spans]), np.array([prob[a:b].max() for a, b in spans])


def recheck_frame(ids: list[str], sim: np.ndarray, prob: np.ndarray, cfg: SplitsConfig, check: str) -> tuple:
    """A GX frame: every recomputed score below its threshold (strictly: the filter drops at or over)."""
    import great_expectations as gx
    import pandas as pd

    df = pd.DataFrame({"row": ids, "held_out_similarity": sim, "held_out_probability": prob})
    expectations = [
        gx.expectations.ExpectColumnValuesToBeBetween(
            column=column, max_value=bound, strict_max=True, meta={"check": check}
        )
        for column, bound in (("held_out_similarity", cfg.leakage_threshold),
                              ("held_out_probability", cfg.leakage_probability))
    ]  # fmt: skip
    return df, expectations, "row"


def split_recheck_frames(store, scope: str, taxonomy: Taxonomy, cfg, cache_dir=None) -> dict:
    """The frame behind no_held_out_leakage_rechecked: one narrow scope's stored training prompts."""
    held_out = taxonomy.held_out(scope)
    rows = store.query(
        "SELECT s.prompt_id, p.text FROM splits s JOIN prompts p USING (prompt_id)"
        " WHERE s.scope = ? AND s.role = 'train' ORDER BY s.prompt_id",
        [scope],
    )
    if held_out is None or rows.is_empty():
        return {}
    sim, prob = recheck_scores(store, held_out, rows["text"].to_list(), cfg.prompts.embedding_model, cache_dir)
    return {"leakage_recheck": recheck_frame(rows["prompt_id"].to_list(), sim, prob, cfg.splits, SPLIT_LEAKAGE_CHECK)}


def check_sft_leakage(store, constitution: str, scope: str, cfg, cache_dir=None) -> dict:
    """sft_no_held_out_leakage on one constitution x scope's stored examples: {check: outcome}. Failing
    rows are named `<prompt_id>:prompt` or `<prompt_id>:response:seed<seed>` with the score."""
    from ealign_dagster.core.expectations import validate_frames
    from ealign_dagster.core.schemas import load_taxonomy

    held_out = load_taxonomy().held_out(scope)
    rows = store.query(
        "SELECT * FROM sft_examples WHERE constitution = ? AND scope = ? ORDER BY prompt_id", [constitution, scope]
    )
    frames = {}
    if held_out is not None and not rows.is_empty():
        seeds = rows["seed"].to_list() if "seed" in rows.columns else [None] * rows.height
        ids = [f"{pid}:prompt" for pid in rows["prompt_id"]]
        ids += [f"{pid}:response" + ("" if s is None else f":seed{s}") for pid, s in zip(rows["prompt_id"], seeds)]
        texts = rows["prompt"].to_list() + rows["response"].to_list()
        sim, prob = recheck_scores(store, held_out, texts, cfg.prompts.embedding_model, cache_dir)
        (check,) = SFT_LEAKAGE_CHECKS
        frames["sft_leakage_recheck"] = recheck_frame(ids, sim, prob, cfg.splits, check)
    return validate_frames(frames, list(SFT_LEAKAGE_CHECKS))
