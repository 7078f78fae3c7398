"""Blocking Great Expectations checks on each SFT dataset partition."""

import dagster as dg

from ealign_dagster.cai.assets import sft_datasets
from ealign_dagster.cai.expectations import SFT_CHECKS
from ealign_dagster.orchestration.checks import expectation_results, expectation_specs
from ealign_dagster.orchestration.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.orchestration.resources import EalignResource


@dg.multi_asset_check(specs=expectation_specs(SFT_CHECKS, sft_datasets, CONSTITUTION_X_SCOPE), pool="duckdb")
def sft_expectations(context: dg.AssetCheckExecutionContext, ealign: EalignResource):
    """Re-reads the written examples and validates them with GX."""
    from ealign_dagster.cai.expectations import sft_frames
    from ealign_dagster.core.expectations import validate_frames

    keys, cfg, store = context.partition_key.keys_by_dimension, ealign.cfg.sft, ealign.store
    rows = store.query(
        "SELECT prompt_id, response, n_tokens, response_tokens FROM sft_examples WHERE constitution = ? AND scope = ?",
        [keys["constitution"], keys["scope"]],
    ).to_pandas()
    eval_ids = store.query("SELECT DISTINCT prompt_id FROM splits WHERE role = 'eval'")["prompt_id"].to_list()
    outcomes = validate_frames(sft_frames(rows, eval_ids, cfg.min_tokens, cfg.max_tokens), list(SFT_CHECKS))
    yield from expectation_results(outcomes, sft_datasets.key, partition=str(context.partition_key), rows=len(rows))
