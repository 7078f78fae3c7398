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
