"""The one DuckDB writer and reader of `results.duckdb`."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from ealign_dagster.paths import PROJECT_ROOT, value_version

SQL_DIR = PROJECT_ROOT / "sql"


@dataclass
class Lineage:
    """Who wrote a set of rows, and the versions of what they were made from."""

    run_id: str
    asset_key: str
    partition_key: str = ""
    input_versions: dict = field(default_factory=dict)


def data_version(df: pd.DataFrame) -> str:
    """Content hash of a table's rows, independent of row order."""
    if df.empty:
        return value_version([])
    hashed = pd.util.hash_pandas_object(df.astype(str), index=False).sort_values()
    return value_version(hashed.astype(str).tolist())


def sql_file(relpath: str) -> str:
    return (SQL_DIR / relpath).read_text(encoding="utf-8")


class Store:
    """Short-lived connections: writers serialise through a Dagster pool; a lock held by another
    process is retried, so readers and writers never crash each other."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def connect(self, read_only: bool = False, wait_s: float | None = None):
        """A connection, waiting while another process holds the file (DuckDB allows one writing
        process, or any number of read-only ones): a reader (`ealign sql`, the DuckDB CLI with
        -readonly) and a run's writers take turns; neither fails because of the other. Writers wait up
        to 10 minutes (a reader left open), readers up to 2."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (wait_s if wait_s is not None else 120.0 if read_only else 600.0)
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_schema(self) -> None:
        """Apply sql/schema/*.sql then sql/views/*.sql; idempotent."""
        with self.connect() as con:
            for path in sorted((SQL_DIR / "schema").glob("*.sql")) + sorted((SQL_DIR / "views").glob("*.sql")):
                con.execute(path.read_text(encoding="utf-8"))

    def replace(self, table: str, df: pd.DataFrame, where: dict, lineage: Lineage, version: str | None = None) -> str:
        """Replace the rows matching `where` with `df` (plus lineage columns) in one transaction,
        and record the materialization. Returns the data version of `df`."""
        version = version or data_version(df)
        self.replace_many([(table, df, where)], lineage, version)
        return version

    def replace_many(self, writes: list[tuple[str, pd.DataFrame, dict]], lineage: Lineage, version: str) -> None:
        """Several tables of one partition, all or nothing."""
        self.ensure_schema()
        with self.connect() as con:
            con.begin()
            try:
                for table, df, where in writes:
                    out = df.copy()
                    out["run_id"], out["asset_key"] = lineage.run_id, lineage.asset_key
                    out["partition_key"] = lineage.partition_key
                    out["input_versions"] = json.dumps(lineage.input_versions, sort_keys=True)
                    cond = " AND ".join(f'"{k}" = ?' for k in where) or "TRUE"
                    con.execute(f'DELETE FROM "{table}" WHERE {cond}', list(where.values()))
                    con.register("_incoming", out)
                    con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _incoming')
                    con.unregister("_incoming")
                self._record(con, lineage, version, len(writes[0][1]), writes[0][0])
                con.commit()
            except Exception:
                con.rollback()
                raise

    @staticmethod
    def _record(con, lineage: Lineage, version: str, rows: int, table: str) -> None:
        con.execute(
            "DELETE FROM materializations WHERE asset_key = ? AND partition_key = ?",
            [lineage.asset_key, lineage.partition_key],
        )
        con.execute(
            "INSERT INTO materializations (asset_key, partition_key, run_id, data_version, input_versions, row_count)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [lineage.asset_key, lineage.partition_key, lineage.run_id, version,
             json.dumps(lineage.input_versions, sort_keys=True), rows],
        )

    def version_of(self, asset_key: str, partition_key: str = "") -> str | None:
        """The data version of what an asset partition last wrote."""
        rows = self.query(
            "SELECT data_version FROM materializations WHERE asset_key = ? AND partition_key = ?",
            [asset_key, partition_key],
        )
        return None if rows.empty else rows.iloc[0, 0]

    def query(self, sql: str, params: list | None = None, read_only: bool = False) -> pd.DataFrame:
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no results yet; run `ealign run` first")
        with self.connect(read_only=read_only) as con:
            return con.execute(sql, params or []).df()
