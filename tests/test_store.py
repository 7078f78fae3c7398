"""The DuckDB store: an existing home keeps its results when a table gains columns."""

import duckdb
import polars as pl

from ealign_dagster.core.store import Lineage, Store


def test_a_table_from_an_older_schema_gains_the_new_columns(tmp_path):
    db = tmp_path / "results.duckdb"
    with duckdb.connect(str(db)) as con:  # judge_agreement as an older release made it, with one row
        con.execute("CREATE TABLE judge_agreement (judge_a VARCHAR NOT NULL, judge_b VARCHAR NOT NULL, n INTEGER,"
                    " run_id VARCHAR, asset_key VARCHAR, partition_key VARCHAR, input_versions JSON)")  # fmt: skip
        con.execute("INSERT INTO judge_agreement VALUES ('a', 'b', 3, 'r0', 'judge_agreement', '', '{}')")
    store = Store(db)
    store.ensure_schema()
    assert store.query("SELECT count(*) AS n FROM judge_agreement")["n"][0] == 1
    row = pl.DataFrame({"judge_a": ["a"], "judge_b": ["b"], "field": ["refused"], "n": [4], "agreement": [0.5],
                        "kappa": [0.1]})  # fmt: skip
    store.replace_many([("judge_agreement", row, {})], Lineage("r1", "judge_agreement"), "v1")
    out = store.table("judge_agreement")
    assert out.select("field", "kappa").rows() == [("refused", 0.1)]
