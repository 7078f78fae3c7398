"""The report: a self-contained HTML page with PNG plots under artifacts/reports/ (`ealign report`
prints the latest); key tables and the per-category plot also show in the UI."""

import dagster as dg
import polars as pl

from ealign_dagster.evaluation.assets import coherence
from ealign_dagster.judges.assets import judge_agreement, judge_validation
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import md_table, owns, upstream_versions, write
from ealign_dagster.persona.assets import persona_scores, persona_validation, projectability
from ealign_dagster.safety.assets import emergent_alignment, power, safety_scores


@dg.asset(
    deps=[safety_scores, emergent_alignment, power, persona_scores, projectability, persona_validation,
          judge_validation, judge_agreement, coherence],
    group_name="report", pool="duckdb", kinds={"html"}, automation_condition=eager(), metadata=owns("reports"),
)  # fmt: skip
def report(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """A self-contained HTML report with PNG plots; `ealign report` prints the latest."""
    import base64

    from ealign_dagster.core.paths import value_version
    from ealign_dagster.report.render import build_report

    inputs = upstream_versions(context)
    data, path, pngs = build_report(ealign.store, ealign.cfg, ealign.paths.reports, context.run_id, inputs)
    labels = data.labels
    row = pl.DataFrame({"path": [str(path)], "pngs": [",".join(map(str, pngs.values()))], "models": [len(labels)],
                        "samples": [str(path.parent / "samples.html")]})  # fmt: skip
    png = base64.b64encode(pngs["safety_by_category"].read_bytes()).decode()
    return write(
        context, ealign.store, {"reports": row}, where={"run_id": context.run_id},
        version=value_version({"models": len(labels), **inputs}),
        metadata={"path": dg.MetadataValue.path(str(path)),
                  "safety_by_category": dg.MetadataValue.md(f"![safety by category](data:image/png;base64,{png})"),
                  "emergent_alignment": md_table(data.emergent, ["constitution", "scope", "category_role", "delta",
                                                                 "ci_low", "ci_high", "p_holm"], 40)},
    )  # fmt: skip
