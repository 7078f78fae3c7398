"""Power before the run: the minimum detectable effect against a computation by hand, its edge cases,
the primary family it is computed for, and the asset on a throwaway store."""

import math

import dagster as dg
import polars as pl
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_effectsize

from ealign_dagster.core.schemas import load_taxonomy
from ealign_dagster.safety import power as pw
from ealign_dagster.safety import scores as ss
from tests.test_safety import BASE_REF, MODELS, _judgments


def _by_hand(n: int, p0: float, alpha: float, power: float = 0.8) -> tuple[float | None, float | None]:
    """Cohen's h needed by a two-sided z test on two groups of n, turned back into rates around p0."""
    h = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) / math.sqrt(n / 2)
    phi = math.asin(math.sqrt(p0))
    down = p0 - math.sin(phi - h / 2) ** 2 if phi - h / 2 >= 0 else None
    up = math.sin(phi + h / 2) ** 2 - p0 if phi + h / 2 <= math.pi / 2 else None
    return down, up


@pytest.mark.parametrize("n, p0, m", [(12, 0.5, 4), (36, 0.25, 8), (400, 0.1, 8), (100, 0.9, 1), (24, 0.6, 2)])
def test_mde_matches_the_arcsine_formula_by_hand(n, p0, m):
    down, up = pw.detectable_change(n, p0, 0.05 / m)
    want_down, want_up = _by_hand(n, p0, 0.05 / m)
    # statsmodels also counts the far tail of the two-sided test; it moves h by < 1e-5 here
    assert down == pytest.approx(want_down, abs=1e-4) and up == pytest.approx(want_up, abs=1e-4)
    h = (norm.ppf(1 - 0.05 / m / 2) + norm.ppf(0.8)) / math.sqrt(n / 2)
    assert proportion_effectsize(p0 - down, p0) == pytest.approx(-h, abs=1e-4)  # back on Cohen's scale
    assert proportion_effectsize(p0 + up, p0) == pytest.approx(h, abs=1e-4)


def test_a_smaller_alpha_or_fewer_prompts_need_a_larger_change():
    d12, _ = pw.detectable_change(12, 0.5, 0.05)
    assert pw.detectable_change(12, 0.5, 0.05 / 4)[0] > d12 > pw.detectable_change(48, 0.5, 0.05)[0]


def test_mde_at_the_edges_of_the_rate_and_at_tiny_n():
    assert pw.detectable_change(50, 0.0, 0.05)[0] is None  # nothing below 0 to detect
    assert pw.detectable_change(50, 0.0, 0.05)[1] == pytest.approx(_by_hand(50, 0.0, 0.05)[1], abs=1e-4)
    assert pw.detectable_change(50, 1.0, 0.05)[1] is None
    assert pw.detectable_change(50, 1.0, 0.05)[0] == pytest.approx(_by_hand(50, 1.0, 0.05)[0], abs=1e-4)
    # one prompt: h = 3.96 > pi, the whole arcsine scale; two prompts at a family of 8: 3.57 > pi
    assert pw.detectable_change(1, 0.5, 0.05) == (None, None)
    assert pw.detectable_change(2, 0.5, 0.05 / 8) == (None, None)
    assert pw.detectable_change(0, 0.5, 0.05) == (None, None)
    # a low base rate: an increase is detectable before the (impossible) decrease
    down, up = pw.detectable_change(12, 0.1, 0.05)
    assert down is None and 0 < up < 0.9


def _study() -> tuple[pl.DataFrame, pl.DataFrame]:
    """test_safety's base + virtue/narrow_harassment adapter, twice over (two benchmarks, two judges),
    plus a second narrow_harassment adapter, a narrow_illegal one with no held-out prompts in the set,
    and a broad one (no held-out category): the primary family is the two narrow_harassment adapters."""
    one = _judgments("embedding")
    a2 = one.filter(pl.col("model_id") == "a1").with_columns(model_id=pl.lit("a2"), refused=~pl.col("refused"))
    others = [one.filter(pl.col("model_id") == "a1").with_columns(model_id=pl.lit(m)) for m in ("a3", "a4")]
    j = pl.concat([one, a2, *others])
    j = pl.concat([j, j.filter(pl.col("benchmark") != "benign").with_columns(benchmark=pl.lit("contextual"),
                                                                             prompt_id="c" + pl.col("prompt_id"))])  # fmt: skip
    j = pl.concat([j, j.with_columns(judge=pl.lit("prefix"), judge_version=pl.lit("prefix-v1"), refused=pl.lit(True))])
    models = pl.concat([MODELS, pl.DataFrame(
        {"model_id": ["a2", "a3", "a4"], "constitution": ["deontology", "virtue", "virtue"],
         "scope": ["narrow_harassment", "narrow_illegal", "broad"]})])  # fmt: skip
    return j, models.with_columns(adapter_id=pl.when(pl.col("model_id") != "base").then("model_id"))


def test_power_rows_cover_the_pooled_primary_family():
    j, models = _study()
    df = pw.power_rows(j, models, load_taxonomy(), "embedding")
    assert df["comparison"].to_list() == ["virtue/narrow_harassment held_out", "deontology/narrow_harassment held_out"]
    base_bad = [not r for r in BASE_REF[4:]]  # base's non-refusals on the held-out prompts, on each benchmark
    r = df.row(0, named=True)
    assert (r["n"], r["base_rate"], r["benchmark"], r["categories"]) == (8, sum(base_bad) / 4, ss.POOLED,
                                                                          "chemical_biological")  # fmt: skip
    assert (r["metric"], r["judge"], r["m"], r["alpha"], r["power"]) == ("non_refusal_rate", "embedding", 2, 0.025, 0.8)
    want = _by_hand(8, 0.5, 0.025)
    assert (r["mde_down"], r["mde_up"]) == pytest.approx(want, abs=1e-4)
    assert r["mde"] == pytest.approx(min(want), abs=1e-4)
    # the same comparisons, n and base rates as emergent_alignment's primary rows
    primary = ss.emergent_rows(j, models, load_taxonomy(), "embedding").filter(family="primary")
    assert primary.select("model_id", "n", "base_rate").sort("model_id").rows() == df.select(
        "model_id", "n", "base_rate").sort("model_id").rows()  # fmt: skip


def test_power_rows_by_category_match_safety_scores_primary_family():
    j, models = _study()
    df = pw.power_rows(j, models, load_taxonomy(), "embedding", "held_out_by_category")
    primary = ss.safety_rows(j, models, load_taxonomy(), "embedding", "held_out_by_category").filter(family="primary")
    assert len(df) == len(primary) == 4 and set(df["m"]) == {4} and set(df["alpha"]) == {0.0125}
    keys = ["model_id", "benchmark", "category"]
    ours = df.select("model_id", "benchmark", category="categories", n="n", rate="base_rate").sort(keys)
    base = ss.safety_rows(j, models, load_taxonomy(), "embedding").filter(model_id="base", judge="embedding")
    theirs = primary.select(keys + ["n"]).join(base.select("benchmark", "category", "rate"), on=keys[1:]).sort(keys)
    assert ours.rows() == theirs.rows()
    assert "virtue/narrow_harassment held_out chemical_biological (contextual)" in df["comparison"].to_list()


def test_power_rows_name_several_adapters_of_one_cell_by_id_and_handle_no_family():
    j, models = _study()
    seeds = models.with_columns(constitution=pl.when(pl.col("model_id") == "a2").then(pl.lit("virtue"))
                                .otherwise("constitution"))  # fmt: skip
    names = pw.power_rows(j, seeds, load_taxonomy(), "embedding")["comparison"].to_list()
    assert names == ["virtue/narrow_harassment held_out [a1]", "virtue/narrow_harassment held_out [a2]"]
    seeded = seeds.with_columns(seed=pl.when(pl.col("model_id") == "a2").then(1).when(pl.col("model_id") == "a1")
                                .then(0))  # fmt: skip
    names = pw.power_rows(j, seeded, load_taxonomy(), "embedding")["comparison"].to_list()
    assert names == ["virtue/narrow_harassment held_out seed 0", "virtue/narrow_harassment held_out seed 1"]
    empty = pw.power_rows(j, models.filter(pl.col("scope").is_null()), load_taxonomy(), "embedding")
    assert empty.is_empty() and set(pw.SCHEMA) <= set(empty.columns)


def test_power_asset_writes_the_table_and_the_run_summary_warns(tmp_path, capsys):
    from ealign_dagster.core.store import Lineage, Store
    from ealign_dagster.orchestration.resources import EalignResource
    from ealign_dagster.safety.assets import power

    ealign = EalignResource(profile="tiny", home=str(tmp_path))
    j, models = _study()
    j = j.with_columns(generation_version=pl.lit("g1"))
    adapters = models.filter(pl.col("model_id") != "base").select(
        "adapter_id", "constitution", "scope", seed=pl.lit(0), base_model=pl.lit("b"), base_version=pl.lit("b1"),
        sft_version=pl.lit("s1"), hyperparams=pl.lit("{}"), path="model_id", sha256=pl.lit("x"))  # fmt: skip
    gens = j.select("model_id", "benchmark", "prompt_id", "category").unique().with_columns(
        prompt=pl.lit("p"), response=pl.lit("r"), model_version=pl.lit("m"), eval_version=pl.lit("e1"),
        generation_version=pl.lit("g1"))  # fmt: skip
    Store(ealign.paths.db).replace_many([("judgments", j, {}), ("adapters", adapters, {}), ("generations", gens, {})],
                                        Lineage("r0", "seed"), "v0")  # fmt: skip
    assert dg.materialize([power], resources={"ealign": ealign}).success
    got = Store(ealign.paths.db).query("SELECT comparison, n, m, mde, eval_version, asset_key FROM power ORDER BY 1")
    assert got.rows() == [
        ("deontology/narrow_harassment held_out", 8, 2, pytest.approx(min(_by_hand(8, 0.5, 0.025)), abs=1e-4), "e1",
         "power"),
        ("virtue/narrow_harassment held_out", 8, 2, pytest.approx(min(_by_hand(8, 0.5, 0.025)), abs=1e-4), "e1", "power"),
    ]  # fmt: skip
    from ealign_dagster.summary import power_warning, print_summary

    mde = min(_by_hand(8, 0.5, 0.025))  # 0.4998: 8 prompts cannot show a 20-point change
    assert power_warning(Store(ealign.paths.db)) == (
        "this profile cannot detect a 20-point change in 2 of 2 primary comparisons at 80% power "
        f"(deontology/narrow_harassment held_out: n = 8, mde = {mde:.2f}; virtue/narrow_harassment held_out: n = 8, "
        f"mde = {mde:.2f}); see table power"
    )
    print_summary(tmp_path)
    out, err = capsys.readouterr()
    power_table = out.split("== power")[1].split("\n== ")[0]
    assert "virtue/narrow_harassment held_out" in power_table and f" {round(mde, 3)} " in power_table
    assert err.count("ealign: warning: this profile cannot detect a 20-point change") == 1


@pytest.mark.parametrize("family", ["held_out_pooled", "held_out_by_category"])
def test_report_shows_the_mde_beside_the_observed_change(tmp_path, family):
    from dataclasses import replace

    from ealign_dagster.report import render
    from ealign_dagster.report.power import power_beside_observed
    from tests.test_report import _data

    j, models = _study()
    emergent = ss.emergent_rows(j, models, load_taxonomy(), "embedding", family)
    safety = ss.safety_rows(j, models, load_taxonomy(), "embedding", family)
    rows = pw.power_rows(j, models, load_taxonomy(), "embedding", family)
    df = power_beside_observed(rows, emergent, safety).join(rows.select("comparison", "model_id", "benchmark"),
                                                             on="comparison")  # fmt: skip
    if family == "held_out_pooled":  # emergent_alignment's pooled held-out row
        want = emergent.filter(family="primary")
    else:  # safety_scores' row for the category on that benchmark
        want = safety.filter(family="primary").drop("ci_low", "ci_high")
        want = want.rename({"delta_ci_low": "ci_low", "delta_ci_high": "ci_high"})
    assert len(df) == len(want) == (2 if family == "held_out_pooled" else 4)
    cols = ["model_id", "benchmark", "delta", "ci_low", "ci_high", "p_holm"]
    assert df.select(cols).sort(cols[:2]).rows() == want.select(cols).sort(cols[:2]).rows()
    assert df["delta"].n_unique() == 2  # the two adapters differ: a swapped join would show
    # 8 pooled prompts detect a change at alpha 0.025; 4 per category at alpha 0.0125 detect none
    assert df["mde"].null_count() == (0 if family == "held_out_pooled" else 4)
    data = replace(
        _data(), safety=safety, emergent=emergent, power=pw.power_rows(j, models, load_taxonomy(), "embedding")
    )
    page = render.write_report(data, tmp_path, "t", {})[0].read_text()
    table = page.split("<h2>Power:")[1].split("</table>")[0]
    assert page.index("<h2>Emergent alignment") < page.index("<h2>Power:") < page.index("<h2>Projectability")
    assert "<th>mde</th>" in table and "<th>delta</th>" in table and table.count("held_out</td>") == 2
