"""Blocking Great Expectations checks on each scope's split; failures name the offending rows."""

import dagster as dg

from ealign_dagster.defs.splits.assets import splits
from ealign_dagster.meta import expectation_results, expectation_specs
from ealign_dagster.partitions import SCOPES
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.validation import SPLIT_CHECKS


@dg.multi_asset_check(specs=expectation_specs(SPLIT_CHECKS, splits, SCOPES), pool="duckdb")
def split_expectations(context: dg.AssetCheckExecutionContext, profile: ProfileResource, store: StoreResource):
    """Re-reads the written split, recomputes similarities independently, validates with GX."""
    from ealign_dagster.inputs import load_taxonomy
    from ealign_dagster.splitdata import load_prompts_with_vectors
    from ealign_dagster.splits import held_out_anchors, held_out_probability
    from ealign_dagster.validation import split_frames, validate_frames

    import numpy as np

    scope = context.partition_key
    cfg = profile.load()
    taxonomy = load_taxonomy()
    db = store.get()
    prompts, vecs = load_prompts_with_vectors(db, cfg.prompts.embedding_model)
    rows = db.query(
        "SELECT s.scope, s.role, s.prompt_id, s.category, p.text FROM splits s"
        " LEFT JOIN prompts p USING (prompt_id) WHERE s.scope = ?",
        [scope],
    )
    pos = {pid: i for i, pid in enumerate(prompts["prompt_id"])}
    idx = [pos.get(pid, -1) for pid in rows["prompt_id"]]
    row_vecs = vecs[idx]
    anchors = held_out_anchors(prompts, taxonomy.held_out(scope))
    held = (row_vecs @ vecs[anchors].T).max(axis=1) if anchors.any() else 0.0 * row_vecs[:, 0]
    is_eval = (prompts["role"] == "eval").to_numpy()
    ev = (row_vecs @ vecs[is_eval].T).max(axis=1) if is_eval.any() else 0.0 * row_vecs[:, 0]
    held_p = held_out_probability(prompts, vecs, taxonomy.held_out(scope), row_vecs[(rows["role"] == "train").to_numpy()])
    train_p = np.zeros(len(rows))
    train_p[(rows["role"] == "train").to_numpy()] = held_p
    frames = split_frames(scope, rows, held, train_p, ev, taxonomy, cfg.splits)
    yield from expectation_results(validate_frames(frames, list(SPLIT_CHECKS)), splits.key, scope=scope)
