"""The project's shape: Dagster only in stage asset/check files and the orchestration package, one
owning asset per DuckDB table, short modules and asset bodies."""

import ast
import re
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ealign_dagster"
DAGSTER_ALLOWED = {"definitions.py", "cli.py"}  # the entry points; plus */assets.py, */checks.py, orchestration/


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _may_import_dagster(rel: Path) -> bool:
    return str(rel) in DAGSTER_ALLOWED or rel.name in ("assets.py", "checks.py") or rel.parts[0] == "orchestration"


def test_only_asset_files_and_orchestration_import_dagster():
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if not _may_import_dagster(p.relative_to(PKG)) and _imports(p) & {"dagster", "dagster_dg_cli"}
    ]
    assert offenders == []


def test_no_module_over_400_lines_and_no_asset_body_over_20():
    long_modules = [str(p) for p in PKG.rglob("*.py") if len(p.read_text().splitlines()) > 400]
    assert long_modules == []
    long_bodies = []
    for p in list(PKG.glob("*/assets.py")) + list(PKG.glob("*/checks.py")):
        for node in ast.parse(p.read_text()).body:
            decorated = isinstance(node, ast.FunctionDef) and node.decorator_list
            if decorated:
                first = node.body[1] if isinstance(node.body[0], ast.Expr) else node.body[0]  # after the docstring
                lines = node.end_lineno - first.lineno + 1
                if lines > 20:
                    long_bodies.append(f"{p.relative_to(PKG)}:{node.name} ({lines})")
    assert long_bodies == []


def test_each_table_is_written_by_exactly_one_asset():
    from ealign_dagster.definitions import defs
    from ealign_dagster.orchestration.write import owned_tables

    owners: dict[str, list[str]] = {}
    for ad in defs().assets:
        if isinstance(ad, dg.AssetsDefinition) and ad.is_materializable:
            for key in ad.keys:
                for table in owned_tables(ad, key):
                    owners.setdefault(table, []).append(key.to_user_string())
    assert {t: o for t, o in owners.items() if len(o) != 1} == {}
    ddl = {p.stem for p in (ROOT / "sql" / "schema").glob("*.sql")}
    # every table has its own DDL file and an owner; `materializations` is written by the store itself
    assert set(owners) == ddl - {"materializations"}
    for path in (ROOT / "sql" / "schema").glob("*.sql"):
        created = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text())
        assert created == [path.stem], path.name


def test_the_write_helper_refuses_a_table_the_asset_does_not_own(tmp_path):
    from ealign_dagster.orchestration.resources import EalignResource
    from ealign_dagster.orchestration.write import owns, write

    @dg.asset(metadata=owns("judge_agreement"))
    def intruder(context: dg.AssetExecutionContext, ealign: EalignResource):
        import polars as pl

        return write(context, ealign.store, {"safety_scores": pl.DataFrame({"model_id": ["x"]})})

    result = dg.materialize([intruder], resources={"ealign": EalignResource(home=str(tmp_path))}, raise_on_error=False)
    assert not result.success
    msg = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    assert "writes ['safety_scores'] but owns only ['judge_agreement']" in msg
