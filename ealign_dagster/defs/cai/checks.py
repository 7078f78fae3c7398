"""Blocking Great Expectations checks on each SFT dataset partition."""

import dagster as dg

from ealign_dagster.defs.cai.assets import sft_datasets
from ealign_dagster.meta import expectation_results, expectation_specs
from ealign_dagster.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.validation import SFT_CHECKS


@dg.multi_asset_check(specs=expectation_specs(SFT_CHECKS, sft_datasets, CONSTITUTION_X_SCOPE), pool="duckdb")
def sft_expectations(context: dg.AssetCheckExecutionContext, profile: ProfileResource, store: StoreResource):
    """Re-reads the written examples and validates them with GX."""
    from ealign_dagster.validation import sft_frames, validate_frames

    keys = context.partition_key.keys_by_dimension
    cfg = profile.load()
    db = store.get()
    rows = db.query(
        "SELECT prompt_id, response, n_tokens, response_tokens FROM sft_examples WHERE constitution = ? AND scope = ?",
        [keys["constitution"], keys["scope"]],
    )
    eval_ids = db.query("SELECT DISTINCT prompt_id FROM splits WHERE role = 'eval'")["prompt_id"].tolist()
    outcomes = validate_frames(sft_frames(rows, eval_ids, cfg.sft.min_tokens, cfg.sft.max_tokens), list(SFT_CHECKS))
    yield from expectation_results(outcomes, sft_datasets.key, partition=str(context.partition_key), rows=len(rows))
