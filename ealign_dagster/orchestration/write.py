"""The one write path: every asset hands its frames here. Lineage comes from Dagster's own context
(run id, partition, the data versions of the upstream partitions this step read), the partition is
replaced in one transaction, and the asset gets back its `MaterializeResult` (row count, schema,
preview, data version). Each table has one owning asset, declared on the asset with `owns(...)`."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import polars as pl

from ealign_dagster.core.store import Lineage, data_version

TABLES_KEY = "ealign/tables"  # asset metadata: the DuckDB tables this asset owns
DATA_VERSION_TAG = "dagster/data_version"  # where Dagster records a materialization's or observation's version


def owns(*tables: str) -> dict:
    """Asset metadata declaring the tables an asset writes (no other asset may write them)."""
    return {TABLES_KEY: ",".join(tables)}


def owned_tables(assets_def: dg.AssetsDefinition, key: dg.AssetKey) -> list[str]:
    value = assets_def.metadata_by_key.get(key, {}).get(TABLES_KEY)
    return str(getattr(value, "value", value)).split(",") if value else []


def _record_version(record) -> str | None:
    if record is None:
        return None
    entry = record.event_log_entry
    event = entry.asset_materialization or entry.asset_observation
    return event.tags.get(DATA_VERSION_TAG) if event else None


def _input_partitions(context: dg.AssetExecutionContext, input_name: str) -> list[str]:
    """The upstream partitions this step reads through one input; [] for an unpartitioned upstream."""
    try:
        context.asset_partitions_def_for_input(input_name)
    except dg.DagsterInvariantViolationError:  # Dagster's answer for an unpartitioned upstream
        return []
    return list(context.asset_partition_keys_for_input(input_name))


def upstream_versions(context: dg.AssetExecutionContext) -> dict[str, str | None]:
    """{upstream asset[partition]: data version} of every upstream partition this step depends on,
    as recorded by Dagster (materializations, or observations of source files)."""
    out: dict[str, str | None] = {}
    for name, key in context.assets_def.keys_by_input_name.items():
        label = key.to_user_string()
        for p in _input_partitions(context, name) or [None]:
            record = context.instance.get_latest_data_version_record(key, partition_key=p)
            out[f"{label}[{p}]" if p else label] = _record_version(record)
    return out


def table_metadata(df: pl.DataFrame, preview: list[str] | None = None, n: int = 5) -> dict:
    """Row count, column schema and a short markdown preview, as the UI shows them."""
    return {
        "dagster/row_count": df.height,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=str(t)) for c, t in df.schema.items()]
        ),
        "preview": md_table(df.select(preview) if preview else df, n=n, cut=80),
    }


def md_table(df: pl.DataFrame, columns: list[str] | None = None, n: int = 20, cut: int = 0) -> dg.MetadataValue:
    """A markdown table of the first rows (floats rounded, long text cut)."""
    shown = (df.select(columns) if columns else df).head(n)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for row in shown.iter_rows():
        cells = []
        for v in row:
            text = f"{v:.3f}" if isinstance(v, float) else str(v)
            text = text.replace("\n", " ").replace("|", "/")
            cells.append(text[:cut] if cut else text)
        lines.append("| " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def counts_md(counts: dict, key: str = "what", value: str = "n") -> dg.MetadataValue:
    rows = [f"| {k} | {v} |" for k, v in sorted(counts.items())]
    return dg.MetadataValue.md("\n".join([f"| {key} | {value} |", "|---|---|", *rows]))


def write(
    context: dg.AssetExecutionContext,
    store,
    tables: dict[str, pl.DataFrame],
    where: dict | None = None,
    inputs: dict | None = None,
    preview: list[str] | None = None,
    version: str | None = None,
    metadata: dict | None = None,
    check_results: list | None = None,
    validate=None,
) -> dg.MaterializeResult | None:
    """Replace this partition's rows of the asset's tables (first table = the asset's data) in one
    transaction with lineage columns; returns the MaterializeResult. `where` selects the rows to
    replace (default: all rows); `inputs` adds versions that are not upstream assets (config, models).
    `validate` (see Store.replace_many) can refuse the new rows: then nothing is replaced and this
    returns None."""
    allowed = owned_tables(context.assets_def, context.asset_key)
    stray = [t for t in tables if t not in allowed]
    if stray:
        raise RuntimeError(f"{context.asset_key.to_user_string()} writes {stray} but owns only {allowed}")
    partition = str(context.partition_key) if context.has_partition_key else ""
    lineage = Lineage(
        context.run_id,
        context.asset_key.to_user_string(),
        partition,
        {**upstream_versions(context), **(inputs or {})},
    )
    main_table, main = next(iter(tables.items()))
    version = version or data_version(main)
    if not store.replace_many([(t, df, where or {}) for t, df in tables.items()], lineage, version, validate):
        return None
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={**table_metadata(main, preview), "table": main_table, "data_version": version, **(metadata or {})},
        check_results=check_results or [],
    )


def write_checked(context: dg.AssetExecutionContext, store, tables: dict[str, pl.DataFrame], suite, check_metadata=None,
                  **kw) -> Iterator:  # fmt: skip
    """`write` with the asset's blocking checks run on the new rows before they replace the old ones,
    inside the same transaction: `suite(staged_store)` -> {check name: outcome}. All pass: the rows
    are committed and the MaterializeResult carries the results. One fails: the transaction is rolled
    back (DuckDB keeps the previous rows), only the check results are yielded (Dagster keeps the
    previous materialization and fails the step), and nothing downstream runs. For `yield from`."""
    from ealign_dagster.orchestration.checks import expectation_results

    outcomes = {}

    def passes(staged) -> bool:
        outcomes.update(suite(staged))
        return all(o.passed for o in outcomes.values())

    result = write(context, store, tables, validate=passes, **kw)
    checks = expectation_results(outcomes, context.asset_key, **(check_metadata or {}))
    if result is None:
        yield from checks
    else:
        yield dg.MaterializeResult(data_version=result.data_version, metadata=result.metadata, check_results=checks)
