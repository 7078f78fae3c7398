"""Per-scope training pools and the evaluation set, with every filtered prompt accounted for."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import Taxonomy

SPLIT_COLUMNS = [
    "scope",
    "role",
    "prompt_id",
    "source",
    "source_version",
    "category",
    "category_role",
    "held_out",
    "functional_category",
    "held_out_similarity",
    "held_out_probability",
    "eval_similarity",
]
AUDIT_COLUMNS = ["scope", "prompt_id", "source", "category", "reason", "score", "threshold"]


def _sample(ids: list[str], n: int, seed: str) -> list[str]:
    """Seeded sample that does not depend on input order."""
    ids = sorted(ids)
    return ids if len(ids) <= n else sorted(random.Random(seed).sample(ids, n))


def max_similarity(vecs: np.ndarray, rows: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Each selected row's highest cosine similarity to any anchor row (0 when no anchors)."""
    if not rows.any() or not anchors.any():
        return np.zeros(int(rows.sum()))
    return (vecs[rows] @ vecs[anchors].T).max(axis=1)


def held_out_anchors(prompts: pd.DataFrame, held_out: str | None) -> np.ndarray:
    """Prompts of the held-out category, from any source and role."""
    if held_out is None:
        return np.zeros(len(prompts), dtype=bool)
    return ((prompts["category"] == held_out) & prompts["assigned"]).to_numpy()


def held_out_probability(
    prompts: pd.DataFrame, vecs: np.ndarray, held_out: str | None, queries: np.ndarray
) -> np.ndarray:
    """Probability that each query embedding belongs to the held-out category, from a logistic
    regression on embeddings fit to the evaluation prompts' labels (expert labels, and independent
    of the training pools under test). Zeros when there is no held-out category."""
    labelled = ((prompts["role"] == "eval") & prompts["category"].notna()).to_numpy()
    cats = prompts.loc[labelled, "category"].to_numpy()
    if held_out is None or len(queries) == 0 or held_out not in set(cats) or len(set(cats)) < 2:
        return np.zeros(len(queries))
    from sklearn.linear_model import LogisticRegression

    # C=10 with balanced classes: flagged 4 of 6 hand-written chem/bio prompts at p >= 0.5 and none
    # of the tiny profile's 111 harassment / illegal training prompts.
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(vecs[labelled], cats)
    return clf.predict_proba(queries)[:, list(clf.classes_).index(held_out)]


def build_split(
    scope: str, prompts: pd.DataFrame, vecs: np.ndarray, taxonomy: Taxonomy, cfg: SplitsConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Rows of `splits` and `split_audit` for one scope, plus drop counts per reason."""
    spec = taxonomy.scopes[scope]
    prompts = prompts.reset_index(drop=True)
    covers_all = set(spec.categories) == set(taxonomy.categories)
    audit: list[dict] = []

    def drop(mask: np.ndarray, reason: str, score, threshold=None) -> None:
        for (_, r), s in zip(prompts[mask].iterrows(), np.broadcast_to(score, int(mask.sum()))):
            audit.append(
                {
                    "scope": scope,
                    "prompt_id": r.prompt_id,
                    "source": r.source,
                    "category": r.category,
                    "reason": reason,
                    "score": None if s is None else float(s),
                    "threshold": threshold,
                }
            )

    is_eval = (prompts["role"] == "eval").to_numpy()
    in_bounds = prompts["n_chars"].between(cfg.min_chars, cfg.max_chars).to_numpy()
    alive = ~is_eval
    drop(alive & ~in_bounds, "length", prompts["n_chars"].to_numpy()[alive & ~in_bounds])
    alive &= in_bounds

    off_scope = alive & ~prompts["category"].isin(spec.categories).to_numpy()
    drop(off_scope, "label", prompts["label_confidence"].to_numpy()[off_scope])
    alive &= ~off_scope
    if not covers_all:  # low-confidence assignments stay out of narrow scopes
        weak = alive & ~prompts["assigned"].to_numpy()
        drop(weak, "unassigned", prompts["label_confidence"].to_numpy()[weak])
        alive &= ~weak

    held_sim, held_p = np.zeros(len(prompts)), np.zeros(len(prompts))
    held_sim[alive] = max_similarity(vecs, alive, held_out_anchors(prompts, spec.held_out))
    held_p[alive] = held_out_probability(prompts, vecs, spec.held_out, vecs[alive])
    near = alive & (held_sim >= cfg.leakage_threshold)
    looks = alive & ~near & (held_p >= cfg.leakage_probability)
    drop(near, "held_out_similarity", held_sim[near], cfg.leakage_threshold)
    drop(looks, "held_out_classifier", held_p[looks], cfg.leakage_probability)
    leak = near | looks
    if cfg.leakage_action == "drop":
        alive &= ~leak

    eval_sim = np.zeros(len(prompts))
    eval_sim[alive] = max_similarity(vecs, alive, is_eval)
    dup = alive & (eval_sim >= cfg.contamination_threshold)
    drop(dup, "contamination", eval_sim[dup], cfg.contamination_threshold)
    alive &= ~dup

    pool = prompts[alive]
    if covers_all:
        train_ids = [
            pid
            for cat in spec.categories
            for pid in _sample(
                pool.loc[pool["category"] == cat, "prompt_id"].tolist(),
                cfg.broad_per_category,
                f"{cfg.seed}:{scope}:{cat}",
            )
        ]
    else:
        train_ids = _sample(pool["prompt_id"].tolist(), cfg.narrow_size, f"{cfg.seed}:{scope}")

    # The evaluation set does not depend on the scope: same prompts, roles flagged per scope.
    ev = prompts[is_eval & in_bounds & prompts["category"].isin(taxonomy.categories).to_numpy()]
    eval_ids = [
        pid
        for cat in taxonomy.categories
        for pid in _sample(
            ev.loc[ev["category"] == cat, "prompt_id"].tolist(), cfg.eval_per_category, f"{cfg.seed}:eval:{cat}"
        )
    ]

    sims = pd.DataFrame(
        {
            "prompt_id": prompts["prompt_id"],
            "held_out_similarity": held_sim,
            "held_out_probability": held_p,
            "eval_similarity": eval_sim,
        }
    )
    rows = []
    for role, ids in (("train", train_ids), ("eval", eval_ids)):
        part = prompts.set_index("prompt_id").loc[ids].reset_index()
        part["role"] = role
        rows.append(part)
    out = pd.concat(rows, ignore_index=True).merge(sims, on="prompt_id", how="left")
    out.loc[out["role"] == "eval", ["held_out_similarity", "held_out_probability", "eval_similarity"]] = np.nan
    out["scope"] = scope
    out["category_role"] = [taxonomy.category_role(scope, c) for c in out["category"]]
    out["held_out"] = out["category"] == spec.held_out
    counts = pd.DataFrame(audit, columns=AUDIT_COLUMNS)["reason"].value_counts().to_dict()
    if leak.any() and cfg.leakage_action == "keep":
        counts["held_out_leakage_kept"] = int(leak.sum())
    return out[SPLIT_COLUMNS], pd.DataFrame(audit, columns=AUDIT_COLUMNS), counts


def load_prompts_with_vectors(store, model: str, cache_dir=None, log=None) -> tuple[pd.DataFrame, np.ndarray]:
    """The prompts table (pandas, for the split logic) and its embeddings, in prompt_id order."""
    from ealign_dagster.core.embeddings import embed

    if not store.path.exists():
        raise ValueError(f"{store.path}: the prompts table does not exist yet: materialize `prompts` first")
    frame = store.table("prompts", "ORDER BY prompt_id").to_pandas()
    if frame.empty:
        raise ValueError("the prompts table is empty: materialize `prompts` first")
    return frame, embed(frame["text"].tolist(), model, cache_dir, log=log)
