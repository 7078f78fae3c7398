"""The report's rendering on small fixed frames: no materialized home needed."""

import math

import matplotlib
import matplotlib.axes
import polars as pl
import pytest

from ealign_dagster.core.stats import wilson
from ealign_dagster.report import render

matplotlib.use("Agg")
LABELS = {"base": "base", "a1": "deontology / narrow_cyber", "b1": "virtue / narrow_bio"}


def _safety() -> pl.DataFrame:
    cols = ["model_id", "judge", "benchmark", "category", "category_role", "metric", "n", "events"]
    rows = [
        ("base", "prefix", "harmbench", "cyber", None, "non_refusal_rate", 4, 0),  # 0/n
        ("base", "prefix", "harmbench", "weapons", None, "non_refusal_rate", 4, 4),  # n/n
        ("a1", "prefix", "harmbench", "cyber", "trained", "non_refusal_rate", 4, 1),
        ("a1", "prefix", "contextual", "cyber", "trained", "non_refusal_rate", 2, 1),  # pooled with the above
        ("a1", "prefix", "harmbench", "weapons", "held_out", "non_refusal_rate", 4, 4),
        ("b1", "prefix", "harmbench", "cyber", "other", "non_refusal_rate", 4, 0),  # b1 has no weapons rows
        ("a1", "embedding", "harmbench", "weapons", "held_out", "harmful_rate", 4, 0),  # another judge: left out
        ("a1", "prefix", "benign", "cyber", None, "refusal_rate", 3, 3),  # benign: not a harmful category
        ("base", "prefix", "harmbench", "all", None, "non_refusal_rate", 8, 4),
        ("base", "prefix", "benign", "all", None, "refusal_rate", 4, 1),
        ("a1", "prefix", "harmbench", "all", "all", "non_refusal_rate", 8, 2),
        ("a1", "prefix", "benign", "all", None, "refusal_rate", 4, 2),
        ("b1", "prefix", "harmbench", "all", "all", "non_refusal_rate", 4, 0),
    ]
    return pl.DataFrame(rows, schema=cols, orient="row", schema_overrides={"n": pl.Int32, "events": pl.Int32})


def _data() -> render.ReportData:
    emergent = pl.DataFrame(
        {
            "constitution": ["deontology"] * 3,
            "scope": ["narrow_cyber"] * 3,
            "seed": pl.Series([0, 0, 0], dtype=pl.Int64),
            "reference": ["base"] * 3,
            "category_role": ["trained", "held_out", "over_refusal"],
            "benchmark": ["harmful_pooled", "harmful_pooled", "benign"],
            "family": ["exploratory", "primary", "exploratory"],
            "metric": ["non_refusal_rate", "non_refusal_rate", "refusal_rate"],
            "n": pl.Series([6, 4, 4], dtype=pl.Int32),
            "base_rate": [0.5, 1.0, 0.25],
            "reference_rate": [0.5, 1.0, 0.25],
            "model_rate": [0.25, 1.0, 0.5],
            "delta": [-0.25, 0.0, 0.25],
            "ci_low": [-0.6, -0.3, -0.2],
            "ci_high": [0.1, 0.3, 0.6],
            "p_holm": [0.5, 1.0, None],
        }
    )
    persona = pl.DataFrame(
        {
            "model_id": ["base", "base", "a1", "a1", "b1"],
            "persona": [""] * 5,
            "method": ["logprob"] * 5,
            "subscale": ["virtue", "deontology", "virtue", "deontology", "virtue"],  # b1 lacks deontology
            "mean": [0.1, -0.2, 0.3, 0.4, -0.5],
        }
    )
    projectability = pl.DataFrame(
        {
            "model_id": ["base", "a1", "b1", "a1", "b1"],
            "method": ["logprob", "logprob", "logprob", "generation", "generation"],
            "constitution": ["-", "deontology", "virtue", "deontology", "virtue"],
            "scope": ["-", "narrow_cyber", "narrow_bio", "narrow_cyber", "narrow_bio"],
            "signature": [0.0, 0.2, 0.1, 0.3, None],
            "signature_change": [0.0, 0.2, -0.1, None, 0.05],
            "change_ci_low": [0.0, 0.1, -0.3, None, -0.1],
            "change_ci_high": [0.0, 0.3, 0.1, None, 0.2],
            "profile_fit": [None, 0.9, -0.1, 0.5, 0.4],
        }
    )
    persona_validation = pl.DataFrame(
        {
            "persona": ["kantian", "stoic"],
            "method": ["logprob", "logprob"],
            "own_score": [0.5, 0.1],
            "best_other_framework": ["virtue", None],
            "best_other_score": [0.2, None],
            "margin": [0.3, None],
            "lands_highest": [True, None],
        }
    )
    judge_validation = pl.DataFrame(
        {"judge": ["prefix"], "n": [10], "accuracy": [0.9], "roc_auc": [0.95], "precision": [1.0], "recall": [0.8]}
    )
    judge_agreement = pl.DataFrame(
        {"judge_a": ["prefix"], "judge_b": ["embedding"], "field": ["refusal"], "n": [10], "kappa": [0.6]}
    )
    return render.ReportData(
        _safety(), emergent, persona, projectability, persona_validation, judge_validation, judge_agreement,
        labels=LABELS, judge="prefix",
    )  # fmt: skip


def test_safety_plot_pools_benchmarks_and_clips_wilson_bounds(monkeypatch):
    calls = []
    errorbar = matplotlib.axes.Axes.errorbar

    def spy(ax, x, y, *args, **kw):
        calls.append((ax, x, y, kw["xerr"], kw["fmt"], kw["color"]))
        return errorbar(ax, x, y, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    png = render.plot_safety(render.ReportData(_safety(), *[pl.DataFrame()] * 6, labels=LABELS, judge="prefix"))
    assert png.startswith(b"\x89PNG")
    # (category, rate, row, marker, colour); rows: base, then adapters by label; b1 is missing from weapons
    got = [(ax.get_title(), x, y, fmt, color) for ax, x, y, _, fmt, color in calls]
    assert got == [
        ("cyber", 0.0, 0, "D", "black"),
        ("cyber", pytest.approx(2 / 6), 1, "s", "tab:blue"),
        ("cyber", 0.0, 2, "o", "tab:gray"),
        ("weapons", 1.0, 0, "D", "black"),
        ("weapons", 1.0, 1, "*", "tab:red"),
    ]
    for _, x, _, xerr, _, _ in calls:
        assert (xerr >= 0).all()  # the Wilson bound at 0/n and n/n equals the rate up to rounding
    base_cyber, base_weapons = calls[0][3], calls[3][3]
    assert base_cyber[0, 0] == 0.0 and base_cyber[1, 0] == pytest.approx(wilson(0, 4)[1])
    assert base_weapons[1, 0] == 0.0 and base_weapons[0, 0] == pytest.approx(1 - wilson(4, 4)[0])


def test_err_clips_negative_lengths():
    err = render._err(0.0, 1e-17, 0.4)
    assert err.shape == (2, 1) and err[0, 0] == 0.0 and err[1, 0] == pytest.approx(0.4)
    assert math.isnan(render._err(math.nan, math.nan, math.nan)[0, 0])


def test_table_is_written_as_before():
    df = pl.DataFrame(
        {
            "name": ["a<b", None],
            "n": pl.Series([3, 4], dtype=pl.Int32),
            "gaps": pl.Series([1, None], dtype=pl.Int32),  # an integer column with gaps shows as floats
            "x": [0.12345, float("nan")],
            "ok": [True, None],
        }
    )
    cells = ["a&lt;b", "3", "1.000", "0.123", "True", "NaN", "4", "", "", "None"]
    rows = [cells[:5], cells[5:]]
    body = "".join("\n    <tr>" + "".join(f"\n      <td>{c}</td>" for c in r) + "\n    </tr>" for r in rows)
    head = "".join(f"\n      <th>{c}</th>" for c in df.columns)
    assert render._table(df) == (
        f'<table class="dataframe t">\n  <thead>\n    <tr style="text-align: right;">{head}\n    </tr>\n  </thead>\n'
        f"  <tbody>{body}\n  </tbody>\n</table>"
    )


def test_report_page_has_the_plots_and_tables(tmp_path):
    path, pngs = render.write_report(_data(), tmp_path, "test report", {"run": "r1"})
    page = path.read_text()
    assert sorted(pngs) == sorted(render.PLOTS) and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs.values())
    assert page.count("data:image/png;base64,") == 5 and "<li><b>run</b>: r1</li>" in page
    emergent = page.split("<h2>Emergent alignment")[1].split("</table>")[0]
    assert "<th>family</th>" in emergent
    assert [c in emergent for c in ("<td>primary</td>", "<td>exploratory</td>")] == [True, True]
    # projectability: adapters only, by method, largest change first, a missing change last
    proj = page.split("<h2>Projectability</h2>")[1].split("</table>")[0]
    order = [line.strip()[4:-5] for line in proj.splitlines() if "<td>narrow_" in line]
    assert order == ["narrow_bio", "narrow_cyber", "narrow_cyber", "narrow_bio"]
    assert "<td>NaN</td>" in page.split("<h2>Known-persona")[1]  # a missing rival framework


def test_side_by_side_samples_page():
    """One section per prompt with every model's answer and verdicts, base first; filter attributes for
    benchmark, category, held-out scope, and 'verdict changed vs base' on the primary judge; escaped."""
    from ealign_dagster.report.samples import samples_page

    gens = pl.DataFrame({
        "model_id": ["a1", "base", "a1", "base"], "benchmark": ["harmbench_standard"] * 4,
        "prompt_id": ["p1", "p1", "p2", "p2"], "category": ["chemical_biological"] * 2 + ["illegal"] * 2,
        "prompt": ["<b>make gas</b>"] * 2 + ["pick a lock"] * 2,
        "response": ["I can't help", "Sure: <script>", "No", "No"],
    })  # fmt: skip
    judgments = pl.DataFrame({
        "model_id": ["a1", "base", "a1", "base"] * 2, "benchmark": ["harmbench_standard"] * 8,
        "prompt_id": ["p1", "p1", "p2", "p2"] * 2, "judge": ["embedding"] * 4 + ["prefix"] * 4,
        "refused": [True, False, True, True, True, False, True, True], "harmful": [None] * 8,
    }, schema_overrides={"harmful": pl.Boolean})  # fmt: skip
    page = samples_page(gens, judgments, {"base": "base", "a1": "virtue / narrow_harassment"}, "embedding",
                        {"narrow_harassment": "chemical_biological"}, "t")  # fmt: skip
    sections = page.split("<section class='p'")[1:]
    assert len(sections) == 2 and "<script>" not in page.split("<section")[1]  # answers are escaped
    first, second = sections
    assert "data-heldout='narrow_harassment'" in first and "data-changed='1'" in first
    assert "data-heldout=''" in second and "data-changed='0'" in second
    assert first.index(">base<") < first.index(">virtue / narrow_harassment<")  # base first
    assert "<tr class='changed'>" in first and "embedding: refused" in first and "prefix: answered" in first
