"""The one DuckDB writer and reader of `results.duckdb` (polars frames in and out, over Arrow)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from ealign_dagster.core.paths import PROJECT_ROOT, value_version

SQL_DIR = PROJECT_ROOT / "sql"
LINEAGE_COLUMNS = ("run_id", "asset_key", "partition_key", "input_versions")
COLUMNS_SQL = "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main'"


@dataclass
class Lineage:
    """Who wrote a set of rows, and the versions of what they were made from."""

    run_id: str
    asset_key: str
    partition_key: str = ""
    input_versions: dict = field(default_factory=dict)


def data_version(df: pl.DataFrame) -> str:
    """Content hash of a table's rows, independent of row order."""
    if df.is_empty():
        return value_version([])
    lines = df.select(sorted(df.columns)).write_ndjson().splitlines()
    return value_version(sorted(hashlib.sha256(line.encode()).hexdigest() for line in lines))


READ_STATEMENTS = ("select", "with", "from", "describe", "show", "summarize", "explain", "values", "table", "pivot",
                   "unpivot", "(")  # fmt: skip


def read_only_statement(sql: str) -> str:
    """The SQL of one read-only query, or ValueError: `ealign sql` runs SELECT-like statements only (no
    COPY/EXPORT to files, ATTACH, INSTALL/LOAD, SET or PRAGMA); its connection also has external access
    off, so no function reads or writes a file outside the database."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise ValueError(str(e).splitlines()[0]) from None
    if len(statements) != 1:
        raise ValueError(f"one statement at a time ({len(statements)} given)")
    text = sql.strip().lstrip("(").lower()
    if statements[0].type != duckdb.StatementType.SELECT and not text.startswith(READ_STATEMENTS):
        raise ValueError(f"read-only: {statements[0].type.name} statements are refused (SELECT, WITH, DESCRIBE, ...)")
    return sql


class Store:
    """Short-lived connections: writers serialise through a Dagster pool; a lock held by another
    process is retried, so readers and writers never crash each other."""

    wait_notice_s = 30.0  # while waiting for the file, a line this often

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
        start = time.monotonic()
        deadline = start + (wait_s if wait_s is not None else 120.0 if read_only else 600.0)
        delay, said = 0.05, start
        while True:
            try:
                config = {"enable_external_access": False} if read_only else {}
                con = duckdb.connect(str(self.path), read_only=read_only, config=config)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise
                if time.monotonic() - said >= self.wait_notice_s:  # never silent while waiting
                    said = time.monotonic()
                    print(f"ealign: waiting {said - start:.0f} s for {self.path}: another process holds it "
                          f"({str(e).splitlines()[0]})", file=sys.stderr, flush=True)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_schema(self) -> None:
        """Apply sql/schema/*.sql then sql/views/*.sql; idempotent. A table made by an older schema
        gains the columns added since (NULL in its old rows), so an existing home keeps its results."""
        schema = [p.read_text(encoding="utf-8") for p in sorted((SQL_DIR / "schema").glob("*.sql"))]
        views = [p.read_text(encoding="utf-8") for p in sorted((SQL_DIR / "views").glob("*.sql"))]
        with duckdb.connect() as mem:
            for ddl in schema:
                mem.execute(ddl)
            want = mem.execute(COLUMNS_SQL).fetchall()
        with self.connect() as con:
            have = set(con.execute(COLUMNS_SQL).fetchall())
            tables = {t for t, _, _ in have}
            for table, column, dtype in want:
                if table in tables and (table, column, dtype) not in have:
                    con.execute(f'ALTER TABLE "{table}" ADD COLUMN IF NOT EXISTS "{column}" {dtype}')
            for ddl in schema + views:
                con.execute(ddl)

    def replace_many(
        self, writes: list[tuple[str, pl.DataFrame, dict]], lineage: Lineage, version: str, validate=None
    ) -> bool:
        """Replace the rows matching each `where` with the frame (plus lineage columns) in one
        transaction, all tables or none, and record the materialization. `validate(staged)` runs inside
        the transaction on a Store that sees the new rows; if it returns False everything is rolled
        back, the previous rows stay, and this returns False."""
        self.ensure_schema()
        stamp = {
            "run_id": lineage.run_id,
            "asset_key": lineage.asset_key,
            "partition_key": lineage.partition_key,
            "input_versions": json.dumps(lineage.input_versions, sort_keys=True),
        }
        with self.connect() as con:
            con.begin()
            try:
                for table, df, where in writes:
                    out = df.with_columns(pl.lit(v, dtype=pl.String).alias(k) for k, v in stamp.items())
                    cond = " AND ".join(f'"{k}" = ?' for k in where) or "TRUE"
                    con.execute(f'DELETE FROM "{table}" WHERE {cond}', list(where.values()))
                    con.register("_incoming", out.to_arrow())
                    con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _incoming')
                    con.unregister("_incoming")
                if validate is not None and not validate(Staged(self.path, con)):
                    con.rollback()
                    return False
                con.execute(
                    "DELETE FROM materializations WHERE asset_key = ? AND partition_key = ?",
                    [lineage.asset_key, lineage.partition_key],
                )
                con.execute(
                    "INSERT INTO materializations (asset_key, partition_key, run_id, data_version, input_versions,"
                    " row_count) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        *(stamp[k] for k in ("asset_key", "partition_key", "run_id")),
                        version,
                        stamp["input_versions"],
                        len(writes[0][1]),
                    ],
                )
                con.commit()
            except Exception:
                con.rollback()
                raise
        return True

    def query(self, sql: str, params: list | None = None, read_only: bool = False) -> pl.DataFrame:
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no results yet; run `ealign run` first")
        with self.connect(read_only=read_only) as con:
            con.execute("SET VARIABLE home = ?", [str(self.path.parent)])  # stored paths are relative to it
            return con.execute(sql, params or []).pl()

    def table(self, name: str, where: str = "", params: list | None = None) -> pl.DataFrame:
        """A table's rows without the lineage columns."""
        exclude = ", ".join(LINEAGE_COLUMNS)
        return self.query(f'SELECT * EXCLUDE ({exclude}) FROM "{name}" {where}', params)

    def table_if_present(self, name: str) -> pl.DataFrame | None:
        """`table(name)`, or None where the table was never created (a home from before it existed)."""
        found = self.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [name])
        return self.table(name) if found["n"][0] else None


class Staged(Store):
    """The store as seen from inside an open write transaction (new rows visible, not yet committed)."""

    def __init__(self, path: Path, con):
        super().__init__(path)
        self.con = con

    def query(self, sql: str, params: list | None = None, read_only: bool = False) -> pl.DataFrame:
        return self.con.execute(sql, params or []).pl()
