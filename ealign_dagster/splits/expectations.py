"""The Great Expectations suite behind the blocking checks on each scope's split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ealign_dagster.core.config import SplitsConfig
from ealign_dagster.core.schemas import Taxonomy

SPLIT_CHECKS = {
    "ids_unique_and_present": "prompt ids are non-null, unique within each role, and in `prompts`",
    "categories_in_taxonomy": "every category is one of the taxonomy's",
    "narrow_scope_only_its_category": "training rows are only the scope's own categories",
    "no_held_out_leakage": "no training prompt is a held-out-category prompt or too similar to one",
    "no_train_eval_overlap": "no training prompt is, or nearly duplicates, an evaluated or reference prompt",
    "min_rows_per_category": "every trained and evaluated category has enough rows",
    "train_examples_reached": "the training pool has exactly splits.train_examples prompts, as every other scope",
    "prompt_length_bounds": "every prompt's length is within the profile's bounds",
    "no_held_out_leakage_rechecked": "no training prompt of a narrow scope reaches leakage_threshold or "
    "leakage_probability, recomputed apart from the filter (own queries, cosine and classifier fit)",
}


def split_frames(
    scope: str,
    rows: pd.DataFrame,
    held_sim: np.ndarray,
    held_p: np.ndarray,
    eval_sim: np.ndarray,
    taxonomy: Taxonomy,
    cfg: SplitsConfig,
) -> dict:
    """The frames and expectations behind SPLIT_CHECKS for one scope.

    rows: the scope's split rows joined with prompt text; held_sim / eval_sim: similarities of each
    row to the held-out-category prompts and to the evaluation prompts, held_p: the held-out
    classifier's probability; all recomputed by the caller from the written rows.
    """
    import great_expectations as gx

    E = gx.expectations
    spec = taxonomy.scopes[scope]
    df = rows.copy()
    train = (df["role"] == "train").to_numpy()
    df["train_category"] = df["category"].where(train)
    df["train_prompt_id"] = df["prompt_id"].where(train)
    df["train_held_out_similarity"] = np.where(train, held_sim, np.nan)
    df["train_held_out_probability"] = np.where(train, held_p, np.nan)
    df["train_eval_similarity"] = np.where(train, eval_sim, np.nan)
    eval_ids = sorted(df.loc[~train, "prompt_id"])
    row_expectations = [
        E.ExpectColumnValuesToNotBeNull(column="prompt_id", meta={"check": "ids_unique_and_present"}),
        E.ExpectCompoundColumnsToBeUnique(column_list=["role", "prompt_id"], meta={"check": "ids_unique_and_present"}),
        # a split row whose prompt is gone from `prompts` has no text
        E.ExpectColumnValuesToNotBeNull(column="text", meta={"check": "ids_unique_and_present"}),
        E.ExpectColumnValuesToBeInSet(
            column="category", value_set=list(taxonomy.categories), meta={"check": "categories_in_taxonomy"}
        ),
        E.ExpectColumnValuesToBeInSet(
            column="train_category", value_set=list(spec.categories), meta={"check": "narrow_scope_only_its_category"}
        ),
        E.ExpectColumnValuesToBeBetween(
            column="train_held_out_similarity",
            max_value=cfg.leakage_threshold,
            strict_max=True,
            meta={"check": "no_held_out_leakage"},
        ),
        E.ExpectColumnValuesToBeBetween(
            column="train_held_out_probability",
            max_value=cfg.leakage_probability,
            strict_max=True,
            meta={"check": "no_held_out_leakage"},
        ),
        E.ExpectColumnValuesToNotBeInSet(
            column="train_prompt_id", value_set=eval_ids, meta={"check": "no_train_eval_overlap"}
        ),
        E.ExpectColumnValuesToBeBetween(
            column="train_eval_similarity",
            max_value=cfg.contamination_threshold,
            strict_max=True,
            meta={"check": "no_train_eval_overlap"},
        ),
        E.ExpectColumnValueLengthsToBeBetween(
            column="text",
            min_value=cfg.min_chars,
            max_value=cfg.max_chars,
            meta={"check": "prompt_length_bounds"},
        ),
    ]
    if spec.held_out:
        row_expectations.append(
            E.ExpectColumnValuesToNotBeInSet(
                column="train_category", value_set=[spec.held_out], meta={"check": "no_held_out_leakage"}
            )
        )
    expected = [("train", c) for c in spec.categories] + [("eval", c) for c in taxonomy.categories]
    counts = df.groupby(["role", "category"]).size()
    count_df = pd.DataFrame([{"role_category": f"{r}:{c}", "n": int(counts.get((r, c), 0))} for r, c in expected])
    count_expectations = [
        E.ExpectColumnValuesToBeBetween(
            column="n", min_value=cfg.min_rows_per_category, meta={"check": "min_rows_per_category"}
        )
    ]
    return {
        "rows": (df, row_expectations, "prompt_id"),
        "counts": (count_df, count_expectations, "role_category"),
        "size": train_size_frame(int(train.sum()), cfg.train_examples),
    }


def train_size_frame(n_train: int, target: int) -> tuple[pd.DataFrame, list, str]:
    """The training pool's size against splits.train_examples. A failing row reads as one line: the
    shortfall and, as its index, what was left after filtering."""
    import great_expectations as gx

    pool = f"{n_train} training prompts after filtering (split_audit says why), splits.train_examples = {target}"
    df = pd.DataFrame([{"train_pool": pool, "shortfall": target - n_train}])
    expectation = gx.expectations.ExpectColumnValuesToBeBetween(
        column="shortfall", min_value=0, max_value=0, meta={"check": "train_examples_reached"}
    )
    return df, [expectation], "train_pool"


def check_split(store, scope: str, taxonomy: Taxonomy, cfg, cache_dir=None) -> dict:
    """Re-read one scope's written split, recompute its similarities and held-out probabilities
    independently of the filter that built it, and validate with GX: {check name: outcome}."""
    from ealign_dagster.core.expectations import validate_frames
    from ealign_dagster.splits.build import held_out_anchors, held_out_probability, load_prompts_with_vectors
    from ealign_dagster.splits.recheck import split_recheck_frames

    prompts, vecs = load_prompts_with_vectors(store, cfg.prompts.embedding_model, cache_dir)
    rows = store.query(
        "SELECT s.scope, s.role, s.prompt_id, s.category, p.text FROM splits s"
        " LEFT JOIN prompts p USING (prompt_id) WHERE s.scope = ?",
        [scope],
    ).to_pandas()
    pos = {pid: i for i, pid in enumerate(prompts["prompt_id"])}
    row_vecs = vecs[[pos.get(pid, -1) for pid in rows["prompt_id"]]]
    zeros = np.zeros(len(rows))
    anchors = held_out_anchors(prompts, taxonomy.held_out(scope))
    held = (row_vecs @ vecs[anchors].T).max(axis=1) if anchors.any() else zeros
    train = (rows["role"] == "train").to_numpy()
    # against the prompts this split evaluates (reference benchmarks: every prompt, as the filter did)
    evaluated = (
        prompts["reference"].fill_null(False) | prompts["prompt_id"].is_in(rows.loc[~train, "prompt_id"].tolist())
    ).to_numpy()
    evaluated &= (prompts["role"] == "eval").to_numpy()
    ev = (row_vecs @ vecs[evaluated].T).max(axis=1) if evaluated.any() else zeros
    train_p = zeros.copy()
    train_p[train] = held_out_probability(prompts, vecs, taxonomy.held_out(scope), row_vecs[train])
    frames = split_frames(scope, rows, held, train_p, ev, taxonomy, cfg.splits)
    frames |= split_recheck_frames(store, scope, taxonomy, cfg, cache_dir)
    return validate_frames(frames, list(SPLIT_CHECKS))
