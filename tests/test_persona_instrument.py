"""The persona instrument's own evidence, each statistic against an independent computation: scale
order and its mapping, option mass, acquiescence, Cronbach's alpha, plain vs reverse correlation, and
the known-persona / option-mass gate (on the tiny random model: not interpretable, with the reason)."""

import math
import re

import numpy as np
import polars as pl
import pytest
from scipy import stats

from ealign_dagster.core.schemas import load_constitutions, load_item_bank
from ealign_dagster.persona import instrument as pn
from ealign_dagster.persona import items as pi

BANK = load_item_bank()


def _primary():
    return [it for it in BANK.items if not it.paraphrase_of]


def test_scale_order_is_balanced_within_subscale_and_keying():
    order = pi.scale_order(BANK)
    assert set(order) == {it.id for it in BANK.items}
    for sub in BANK.subscales:
        for rev in (False, True):
            stratum = [order[it.id] for it in _primary() if it.subscale == sub and it.reverse == rev]
            assert sum(stratum) == len(stratum) // 2, (sub, rev)
    for it in BANK.items:
        if it.paraphrase_of:
            assert order[it.id] == order[it.paraphrase_of]  # the paraphrase gap stays a wording check
    assert sum(order.values()) == pytest.approx(len(order) / 2, abs=4)


def test_likert_prompt_names_the_scale_it_asks_with():
    plain = pi.likert_messages("S", None)[-1]["content"]
    flipped = pi.likert_messages("S", "persona", scale_reversed=True)
    assert "1 = strongly disagree" in plain and "5 = strongly agree" in plain
    assert "1 = strongly agree" in flipped[-1]["content"] and "5 = strongly disagree" in flipped[-1]["content"]
    assert "3 = neither agree nor disagree" in flipped[-1]["content"] and flipped[0]["content"] == "persona"


def test_expected_value_maps_back_to_the_agree_scale():
    """Asked 1 = agree, the probabilities p_1..p_5 mean agreement levels 5..1: the mapped value equals
    the expected value of the reversed probability vector, computed here without the mapping."""
    rng = np.random.default_rng(1)
    logp = np.log(rng.dirichlet(np.ones(5), size=50) * rng.uniform(0.05, 1, size=(50, 1)))
    flip = rng.random(50) < 0.5
    asked, mass = pi.expected_likert(logp)
    mapped = pi.agree_scale(asked, flip)
    p = np.exp(logp)
    p = np.where(flip[:, None], p[:, ::-1], p)  # option k asked reversed = agreement level 6 - k
    by_hand = (p * np.arange(1, 6)).sum(1) / p.sum(1)
    assert mapped == pytest.approx(by_hand) and mass == pytest.approx(np.exp(logp).sum(1))
    assert pi.agree_scale(np.array([1.0, 2.5, 5.0]), np.array([True, True, False])) == pytest.approx([5.0, 3.5, 5.0])


class ScaleChat:
    """Puts 0.9 of its mass on one meaning ("agree": whatever number means strongly agree in the
    prompt) or on one position ("5"), the rest spread over the other options."""

    def __init__(self, answer: str, mass: float = 0.9):
        self.answer, self.mass = answer, mass

    def option_logprobs(self, prompts, options, batch_size=16, adapter=None, log=None):
        rows = []
        for p in prompts:
            text = p[-1]["content"]
            pick = re.search(r"(\d) = strongly agree", text).group(1) if self.answer == "agree" else self.answer
            row = np.full(len(options), self.mass * 0.01)
            row[options.index(pick)] = self.mass * 0.96
            rows.append(np.log(row))
        return np.array(rows)


def _run(chat, model_id="m", persona=""):
    return pi.likert_rows(chat, BANK, None).with_columns(model_id=pl.lit(model_id), persona=pl.lit(persona))


def test_acquiescence_and_scale_order_gap_tell_yes_saying_from_position_bias():
    yes = pn.diagnostics(_run(ScaleChat("agree"))).row(0, named=True)
    five = pn.diagnostics(_run(ScaleChat("5"))).row(0, named=True)
    # agreeing with every statement: high acquiescence, no gap between the two scale orders
    agree = (0.96 * 5 + 0.01 * (1 + 2 + 3 + 4)) / 1.0
    assert yes["acquiescence"] == pytest.approx((agree - 3) / 2) and abs(yes["scale_order_gap"]) < 1e-9
    # always the last option: counterbalancing turns it into a gap, not acquiescence
    assert abs(five["acquiescence"]) < 1e-9 and five["scale_order_gap"] == pytest.approx(2 * (agree - 3) / 2)
    assert yes["option_mass_mean"] == pytest.approx(0.9) and yes["low_mass"] is False
    assert yes["n_items"] == len(_primary()) and yes["low_mass_items"] == 0


def test_acquiescence_against_a_hand_computation():
    rng = np.random.default_rng(2)
    df = _run(ScaleChat("agree")).with_columns(value=pl.Series(rng.uniform(-1, 1, len(BANK.items))))
    prim = df.filter(pl.col("paraphrase_of").is_null())
    v, r = prim["value"].to_numpy(), prim["reverse"].to_numpy()
    raw = np.where(r, -v, v)  # agreement before keying
    by_hand = (raw[~r].mean() + raw[r].mean()) / 2
    assert pn.diagnostics(df)["acquiescence"][0] == pytest.approx(by_hand)
    assert pn.acquiescence(np.array([1.0, 1.0, 1.0, -1.0, np.nan]), np.array([0, 0, 0, 1, 1], bool)) == pytest.approx(0)


def test_option_mass_flags_low_mass():
    d = pn.diagnostics(_run(ScaleChat("agree", mass=0.3))).row(0, named=True)
    assert d["option_mass_mean"] == pytest.approx(0.3) and d["low_mass"] is True
    assert d["low_mass_items"] == len(_primary()) and d["option_mass_min"] == pytest.approx(0.3)


def _hoyt(x: np.ndarray) -> float:
    """Alpha as Hoyt's two-way ANOVA (respondents x items, no replication): 1 - MS_error / MS_respondents."""
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    return 1 - (ss_err / ((n - 1) * (k - 1))) / (ss_rows / (n - 1))


def test_cronbach_alpha_against_anova_and_covariance_forms():
    rng = np.random.default_rng(3)
    trait = rng.normal(size=(12, 1))
    x = trait + rng.normal(scale=0.8, size=(12, 6))
    a = pn.cronbach_alpha(x)
    assert a == pytest.approx(_hoyt(x))
    c = np.cov(x, rowvar=False)
    k, mean_cov = 6, c[~np.eye(6, dtype=bool)].mean()
    assert a == pytest.approx(k * mean_cov / (np.diag(c).mean() + (k - 1) * mean_cov))
    assert 0.7 < a < 1  # items that share a trait
    # listwise deletion; too few respondents or items, or no variance: NaN
    x_missing = np.vstack([x, np.r_[np.nan, x[0, 1:]]])
    assert pn.cronbach_alpha(x_missing) == pytest.approx(a)
    assert math.isnan(pn.cronbach_alpha(x[:2])) and math.isnan(pn.cronbach_alpha(x[:, :1]))
    assert math.isnan(pn.cronbach_alpha(np.ones((5, 3))))


def _models(n: int, seed: int = 4) -> pl.DataFrame:
    """n models answering every item: a per-model trait per subscale plus item noise (keyed values)."""
    rng = np.random.default_rng(seed)
    frames = []
    for m in range(n):
        trait = {s: rng.normal(0, 0.4) for s in BANK.subscales}
        vals = pl.Series([float(np.clip(trait[it.subscale] + rng.normal(0, 0.2), -1, 1)) for it in BANK.items])
        frames.append(_run(ScaleChat("agree"), f"m{m}").with_columns(value=vals))
    return pl.concat(frames)


def test_reliability_is_alpha_across_models_on_the_item_matrix():
    df = _models(8)
    rel = pn.reliability(df, "models_under_test")
    assert rel.height == len(BANK.subscales) and set(rel["n_respondents"]) == {8}
    for r in rel.iter_rows(named=True):
        g = df.filter((pl.col("subscale") == r["subscale"]) & pl.col("paraphrase_of").is_null())
        x = np.array([g.filter(model_id=f"m{m}").sort("item_id")["value"].to_numpy() for m in range(8)])
        assert r["n_items"] == x.shape[1] == 8 and r["alpha"] == pytest.approx(_hoyt(x))
        rev = g.filter(model_id="m0").sort("item_id")["reverse"].to_numpy()
        split = stats.pearsonr(x[:, ~rev].mean(1), x[:, rev].mean(1)).statistic
        assert r["split_half_r"] == pytest.approx(split)
    assert (rel["alpha"] > 0.5).all()  # a shared trait per subscale


def test_plain_reverse_r_against_scipy_over_subscale_means():
    df = _models(1, seed=5)
    d = pn.diagnostics(df).row(0, named=True)
    prim = _primary()
    vals = dict(zip(df["item_id"], df["value"]))
    subs = sorted(BANK.subscales)
    plain = [np.mean([vals[it.id] for it in prim if it.subscale == s and not it.reverse]) for s in subs]
    rev = [np.mean([vals[it.id] for it in prim if it.subscale == s and it.reverse]) for s in subs]
    assert d["plain_reverse_r"] == pytest.approx(stats.pearsonr(plain, rev).statistic)
    assert d["plain_reverse_n"] == len(subs) and d["plain_reverse_r"] > 0.5  # both halves carry the trait
    assert math.isnan(pn.pearson(np.array([1.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0])))


def _validation(landed: list[bool], method="logprob") -> pl.DataFrame:
    return pl.DataFrame({"persona": [f"p{i}" for i in range(len(landed))], "method": [method] * len(landed),
                         "lands_highest": landed})  # fmt: skip


def test_gate_needs_every_known_persona_and_enough_mass():
    df = pl.concat([_run(ScaleChat("agree"), "base"), _run(ScaleChat("agree", mass=0.12), "a1")])
    diag = pn.diagnostics(df)
    ok = pn.gate(diag, _validation([True] * 4))
    assert dict(zip(ok["model_id"], ok["interpretable"])) == {"base": True, "a1": False}
    assert ok.filter(model_id="a1")["not_interpretable_reason"][0] == "option mass 0.12 < 0.5"
    bad = pn.gate(diag, _validation([True, False, None, False]))
    assert not bad["interpretable"].any()
    assert bad.filter(model_id="base")["not_interpretable_reason"][0] == (
        "known-persona validation (logprob): 1 of 4 personas land highest on their framework"
    )
    assert bad.filter(model_id="a1")["not_interpretable_reason"][0].endswith("; option mass 0.12 < 0.5")
    none = pn.gate(diag, pl.DataFrame(schema={"persona": pl.String, "method": pl.String, "lands_highest": pl.Boolean}))
    assert set(none["not_interpretable_reason"]) == {"known-persona validation (logprob) has no rows",
                                                    "known-persona validation (logprob) has no rows; option mass 0.12 < 0.5"}  # fmt: skip
    # projectability rows: another model's change reads the base too
    base_bad = pn.gate(pn.diagnostics(pl.concat([_run(ScaleChat("agree", 0.2), "base"), _run(ScaleChat("agree"), "a2")])),
                       _validation([True] * 4))  # fmt: skip
    rows = pl.DataFrame({"model_id": ["base", "a2", "gone"], "method": ["logprob"] * 3})
    out = pn.with_gate(rows, base_bad, base="base")
    assert out["not_interpretable_reason"].to_list() == [
        "option mass 0.2 < 0.5", "base: option mass 0.2 < 0.5",
        "no persona diagnostics for this model; base: option mass 0.2 < 0.5"
    ]  # fmt: skip
    assert out["interpretable"].to_list() == [False, False, False]
    good = pn.gate(
        pn.diagnostics(pl.concat([_run(ScaleChat("agree"), m) for m in ("base", "a2")])), _validation([True] * 4)
    )
    assert pn.with_gate(rows.head(2), good, base="base")["interpretable"].to_list() == [True, True]


def test_persona_scores_and_projectability_run_after_the_validation():
    from ealign_dagster.persona import assets as pa

    deps = lambda a: {k.to_user_string() for k in a.asset_deps[a.key]}  # noqa: E731
    assert {"persona_responses", "persona_validation"} <= deps(pa.persona_scores)
    assert "persona_scores" in deps(pa.projectability)  # its gate is persona_diagnostics


def test_tiny_random_model_is_not_interpretable(paths):
    """The tiny profile's random model puts almost no mass on "1".."5": every score row is gated off
    with the option mass named, and the tables come out with the columns the DDL declares."""
    from ealign_dagster.core import models
    from ealign_dagster.core.config import load_profile
    from ealign_dagster.evaluation.models import BASE
    from ealign_dagster.persona.scores import persona_validation_rows, subscale_scores

    tiny = load_profile("tiny")
    cfg = tiny.model_copy(update={"eval": tiny.eval.model_copy(update={"persona_generate": False})})
    models.build(models.TINY, paths.models)
    cons = load_constitutions()
    runs = [{"model": BASE, "persona": None, "persona_name": ""}]
    runs += [{"model": BASE, "persona": c.persona, "persona_name": n} for n, c in cons.items()]
    lines = []
    answers = pi.answer_items(cfg, paths, BANK, runs, "bank-v1", lines.append)
    progress = [x for x in lines if x.startswith("persona Likert log-probabilities:")]  # never silent for minutes
    assert len(progress) == len(runs) and f"{len(runs)}/{len(runs)} runs (base as virtue)" in progress[-1]
    items, val_items = answers.filter(persona=""), answers.filter(pl.col("persona") != "")
    validation = persona_validation_rows(subscale_scores(val_items, 20), BANK, cons)
    tables = pn.instrument_tables(items, val_items, validation, 20)
    diag, scores = tables["persona_diagnostics"], tables["persona_scores"]
    assert diag.height == 1 + len(cons) and (diag["option_mass_mean"] < 0.01).all() and diag["low_mass"].all()
    assert not scores["interpretable"].any()
    assert scores["not_interpretable_reason"].str.contains(r"option mass [0-9.e-]+ < 0\.5").all()
    for name, df in tables.items():
        ddl = open(f"sql/schema/{name}.sql").read()
        declared = set(re.findall(r"^\s{4}(\w+)\s+[A-Z]", ddl, re.M)) - {"run_id"}
        assert set(df.columns) <= declared | {"adapter_id", "item_bank_version"}, name


def test_report_shows_interpretable_and_why_not(tmp_path, monkeypatch):
    import matplotlib.axes

    from ealign_dagster.report import render
    from tests.test_report import _data

    data = _data()
    reason = "known-persona validation (logprob): 1 of 4 personas land highest on their framework"
    data.projectability = data.projectability.with_columns(
        interpretable=pl.Series([True, True, False, True, True]),
        not_interpretable_reason=pl.Series([None, None, reason, None, None], dtype=pl.String),
    )
    data.persona_diagnostics = pn.gate(pn.diagnostics(_run(ScaleChat("agree", 0.12), "base")), _validation([True]))
    data.persona_reliability = pn.reliability(_models(4), "models_under_test")
    titles = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, t, **k: titles.append(t))
    page = render.write_report(data, tmp_path, "t", {})[0].read_text()
    proj = page.split("<h2>Projectability</h2>")[1].split("</table>")[0]
    assert "<th>interpretable</th>" in proj and f"<td>{reason}</td>" in proj and "<td>False</td>" in proj
    diag = page.split("<h2>Persona instrument per run")[1].split("</table>")[0]
    assert "<td>option mass 0.12 &lt; 0.5</td>" in diag and "<th>acquiescence</th>" in diag
    assert "<th>alpha</th>" in page.split("<h2>Persona reliability")[1].split("</table>")[0]
    note = [" ".join(t.split()) for t in titles if "Projectability" in t]
    assert note == ["Projectability ranking (bootstrap 95% CI over items) NOT INTERPRETABLE (1 of 2 rows): " + reason]


def test_scores_and_projectability_assets_write_the_gate(tmp_path, monkeypatch):
    """persona_scores and projectability on a tmp DuckDB seeded with item answers and a failed validation:
    every written row carries interpretable = false and the reasons; diagnostics and reliability land too."""
    import dagster as dg

    from ealign_dagster.core.store import Lineage, Store
    from ealign_dagster.orchestration.resources import EalignResource
    from ealign_dagster.persona.assets import persona_scores, projectability

    monkeypatch.setenv("EALIGN_HOME", str(tmp_path / "h"))
    res = EalignResource(profile="tiny", home=str(tmp_path / "h"))
    ids = dict(item_bank_version=pl.lit("b1"), adapter_id=pl.lit(None, pl.String), model_version=pl.lit("v"))
    items = _run(ScaleChat("agree", 0.2), "base").with_columns(**ids)
    val_items = pl.concat([_run(ScaleChat("agree"), "base", p) for p in ("kant", "mill", "aristotle")]).with_columns(
        **ids
    )
    validation = pl.DataFrame({"persona": ["kant", "mill", "aristotle"], "framework": ["deontology", "consequentialism",
                               "virtue"], "method": ["logprob"] * 3, "lands_highest": [True, False, False]})  # fmt: skip
    seed = [
        ("persona_items", items, {}),
        ("persona_validation_items", val_items, {}),
        ("persona_validation", validation, {}),
    ]
    res.store.replace_many(seed, Lineage("seed", "seed"), "v0")
    assert dg.materialize([persona_scores, projectability], resources={"ealign": res}).success
    store = Store(res.paths.db)
    why = "known-persona validation (logprob): 1 of 3 personas land highest on their framework; option mass 0.2 < 0.5"
    for table in ("persona_scores", "projectability"):
        rows = store.table(table)
        assert rows.height and not rows["interpretable"].any() and set(rows["not_interpretable_reason"]) == {why}, table
    diag = store.table("persona_diagnostics")
    assert (
        diag.height == 4
        and diag.filter(persona="")["low_mass"].all()
        and not diag.filter(persona="kant")["low_mass"].any()
    )
    rel = store.table("persona_reliability")
    assert set(rel["population"]) == {"models_under_test", "base_personas"}
    assert rel.filter(population="base_personas")["n_respondents"].unique().to_list() == [4]
