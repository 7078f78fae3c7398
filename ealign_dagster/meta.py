"""Metadata every asset returns: row count, column schema, a short markdown preview."""

from __future__ import annotations

import dagster as dg
import pandas as pd


def table_metadata(df: pd.DataFrame, preview_columns: list[str] | None = None, n: int = 5) -> dict:
    shown = df[preview_columns] if preview_columns else df
    head = shown.head(n).copy()
    for c in head.columns:
        if head[c].dtype == object:
            head[c] = head[c].astype(str).str.slice(0, 80).str.replace("\n", " ").str.replace("|", "/")
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()]
        ),
        "preview": dg.MetadataValue.md(head.to_markdown(index=False)),
    }


def counts_md(counts: dict, key: str = "what", value: str = "n") -> dg.MetadataValue:
    rows = [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    return dg.MetadataValue.md("\n".join([f"| {key} | {value} |", "|---|---|", *rows]))


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
