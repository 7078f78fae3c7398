"""Blocking asset checks around the Great Expectations suites of the stages."""

from __future__ import annotations

import dagster as dg


def expectation_specs(checks: dict[str, str], asset, partitions_def) -> list[dg.AssetCheckSpec]:
    """Blocking check specs, one per named property that a GX suite validates. They have no
    automation condition of their own: a run of their asset runs them before anything downstream."""
    return [
        dg.AssetCheckSpec(name, asset=asset, description=text, blocking=True, partitions_def=partitions_def)
        for name, text in checks.items()
    ]


def expectation_results(outcomes: dict, asset_key: dg.AssetKey, **metadata) -> list[dg.AssetCheckResult]:
    """One ERROR-severity check result per outcome; failures carry the offending rows."""
    return [
        dg.AssetCheckResult(
            check_name=name,
            asset_key=asset_key,
            passed=o.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **metadata,
                "unexpected_count": o.unexpected_count,
                "failing_rows": dg.MetadataValue.json(o.failing),
                "expectations": ", ".join(o.expectations),
            },
        )
        for name, o in outcomes.items()
    ]
