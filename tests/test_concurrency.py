"""SQL while a run writes: readers and writers in separate processes take turns on results.duckdb;
neither crashes the other and a reader never sees half a partition."""

import subprocess
import sys
import time
from pathlib import Path

import duckdb

from ealign_dagster.core.store import Lineage, Store

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROWS = 2000

WRITER = f"""
import sys, time
import polars as pl
from ealign_dagster.core.store import Lineage, Store
store, end, i = Store(sys.argv[1]), time.time() + float(sys.argv[2]), 0
while time.time() < end:
    df = pl.DataFrame({{"judge_a": ["a"] * {ROWS}, "judge_b": [f"b{{j}}" for j in range({ROWS})]}}).with_columns(
        field=pl.lit("refused"), n=pl.lit(i), agreement=pl.lit(0.5), kappa=pl.lit(0.1))
    store.replace_many([("judge_agreement", df, {{}})], Lineage(f"run-{{i}}", "judge_agreement"), str(i))
    i += 1
    time.sleep(0.2)  # a run writes a partition now and then, not continuously
print(i)
"""


def test_ealign_sql_during_writes_never_sees_half_a_partition(tmp_path):
    home = tmp_path / "h"
    db = home / "results.duckdb"
    Store(db).ensure_schema()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "12"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    seen = []
    deadline = time.time() + 11
    while time.time() < deadline or len(seen) < 2:  # on a loaded machine one read can take the whole window
        p = subprocess.run(
            [
                str(BIN / "ealign"),
                "sql",
                "--home",
                str(home),
                "--csv",
                "select count(*) as rows, count(distinct n) as versions from judge_agreement",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr[-2000:]
        seen.append(tuple(int(x) for x in p.stdout.splitlines()[1].split(",")))
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0 and int(out) > 2  # the writer was never crashed by the readers
    assert len(seen) >= 2
    assert all(r in ((0, 0), (ROWS, 1)) for r in seen), seen  # all of one write or nothing, never a mix


def test_a_writer_waits_for_a_reader_holding_the_file(tmp_path, capsys):
    db = tmp_path / "results.duckdb"
    Store(db).ensure_schema()
    hold = (
        "import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1], read_only=True)\n"
        "con.execute('select count(*) from judge_agreement').fetchall()\nprint('open', flush=True)\ntime.sleep(3)\ncon.close()"
    )
    reader = subprocess.Popen([sys.executable, "-c", hold, str(db)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    start = time.time()
    import polars as pl

    row = pl.DataFrame(
        {"judge_a": ["a"], "judge_b": ["b"], "field": ["refused"], "n": [1], "agreement": [1.0], "kappa": [1.0]}
    )
    store = Store(db)
    store.wait_notice_s = 0.5
    store.replace_many([("judge_agreement", row, {})], Lineage("r", "x"), "v")
    assert time.time() - start > 1.0  # it waited for the reader instead of failing
    waits = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ealign: waiting")]
    assert waits and f"for {db}: another process holds it" in waits[0]  # and said so while it waited
    reader.wait(timeout=30)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from judge_agreement").fetchone()[0] == 1
