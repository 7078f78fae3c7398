"""Blocking Great Expectations checks on each scope's split; failures name the offending rows."""

import dagster as dg

from ealign_dagster.orchestration.checks import expectation_results, expectation_specs
from ealign_dagster.orchestration.partitions import SCOPES
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.splits.assets import splits
from ealign_dagster.splits.expectations import SPLIT_CHECKS


@dg.multi_asset_check(specs=expectation_specs(SPLIT_CHECKS, splits, SCOPES), pool="duckdb")
def split_expectations(context: dg.AssetCheckExecutionContext, ealign: EalignResource):
    """Re-reads the written split, recomputes similarities independently, validates with GX."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.splits.expectations import check_split

    scope = context.partition_key
    outcomes = check_split(ealign.store, scope, load_taxonomy(), ealign.cfg, ealign.paths.cache)
    yield from expectation_results(outcomes, splits.key, scope=scope)
