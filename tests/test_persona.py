"""Persona scoring on fixed inputs: reply coding, keying, signature, profile fit, known personas,
Likert options from an endpoint."""

import shutil

import numpy as np
import polars as pl
import pytest

from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.schemas import InputError, load_benign, load_constitutions, load_item_bank
from ealign_dagster.persona import items as pi
from ealign_dagster.persona import scores as ps
from tests.fake_endpoint import Endpoint


def test_option_logprobs_from_an_endpoint(paths):
    from ealign_dagster.core.openai_chat import OpenAIChat

    with Endpoint() as ep:
        ep.top_logprobs = lambda body: {"4": -0.1, "5": -2.5, "The": -3.0}
        chat = OpenAIChat(ModelConfig(backend="openai", model="m", base_url=ep.url, max_retries=0), paths)
        lp = chat.option_logprobs([[{"role": "user", "content": "q"}]], pi.LIKERT, adapter="deontology-broad")
        assert lp[0, 3] == pytest.approx(-0.1) and lp[0, 4] == pytest.approx(-2.5) and np.isneginf(lp[0, 0])
        assert ep.requests[0]["model"] == "deontology-broad" and ep.requests[0]["max_tokens"] == 1


def test_reply_coding():
    assert pi.code_reply("I agree. Duties matter.") == "agree"
    assert pi.code_reply("I disagree with this.") == "disagree"
    assert pi.code_reply("I don't agree: outcomes matter.") == "disagree"
    assert pi.code_reply("I do not fully agree") == "disagree"
    assert pi.code_reply("I agree with part of it but I disagree with the rest") == "ambiguous"
    assert pi.code_reply("Ethics is complicated.") == "ambiguous"
    for emphatic in ("I couldn't agree more.", "I can't agree more with this.", "I could not agree more"):
        assert pi.code_reply(emphatic) == "agree", emphatic


class FixedChat:
    """A chat model that always puts its mass on one Likert answer and always says the same thing."""

    def __init__(self, answer: str, reply: str):
        self.answer, self.reply = answer, reply
        self.version = f"fixed:{answer}:{reply}"  # the generation cache keys on it
        self.cache = None

    def option_logprobs(self, prompts, options, batch_size=16, adapter=None, log=None):
        lp = np.full((len(prompts), len(options)), np.log(1e-6))
        lp[:, options.index(self.answer)] = np.log(0.5)
        return lp

    def generate_batches(self, reqs):
        from ealign_dagster.core.chat import Result

        yield list(range(len(reqs))), [Result(self.reply, 5, 3) for _ in reqs]


def _items(chat, tmp_path, monkeypatch, persona=""):
    from ealign_dagster.core.chat import GenerationCache
    from ealign_dagster.core.config import SamplingConfig

    chat.cache = GenerationCache(tmp_path / "g.sqlite")
    df = pi.score_items(chat, load_item_bank(), None, None, True, SamplingConfig(max_new_tokens=4), 0, 16)
    return df.with_columns(model_id=pl.lit("m"), persona=pl.lit(persona))


def test_reverse_keying_cancels_acquiescence(tmp_path, monkeypatch):
    """A model that always answers "5" agrees strongly with the items asked 5 = agree and disagrees
    strongly with those asked 1 = agree (counterbalanced scale order); keyed, every balanced subscale
    scores near 0 either way (not high on everything)."""
    df = _items(FixedChat("5", "I agree."), tmp_path, monkeypatch)
    lp = df.filter(method="logprob")
    flip = lp["scale_reversed"].to_numpy()
    assert lp["raw"].to_numpy()[~flip] == pytest.approx(5.0, abs=1e-4)
    assert lp["raw"].to_numpy()[flip] == pytest.approx(1.0, abs=1e-4)  # "5" means strongly disagree there
    agrees = lp.filter(~pl.col("scale_reversed"))
    assert (agrees.filter(~pl.col("reverse"))["value"] > 0.99).all() and (
        agrees.filter("reverse")["value"] < -0.99
    ).all()
    scores = ps.subscale_scores(df, 200)
    assert scores["mean"].abs().max() < 1e-3  # 4 plain + 4 reverse items per subscale
    # resampling within keying strata: agreeing with everything cannot widen the interval (generated replies
    # agree with everything: the reply prompt has no scale)
    gen = scores.filter(method="generated")
    assert gen["ci_low"].abs().max() < 1e-3 and gen["ci_high"].abs().max() < 1e-3
    assert (gen["ambiguous_rate"] == 0).all() and (gen["n_answered"] == 8).all()
    # a model that disagrees with everything in its replies: same cancellation, other sign per item
    df = _items(FixedChat("1", "I disagree."), tmp_path, monkeypatch)
    g = df.filter(method="generated")
    assert (g.filter("reverse")["value"] == 1).all() and (g.filter(~pl.col("reverse"))["value"] == -1).all()


def test_stratified_interval_against_a_hand_resampling():
    """Resampling within (plain, reverse) strata by hand with numpy gives the same interval; the
    unstratified bootstrap of the same items is wider when response bias splits the strata."""
    rng = np.random.default_rng(3)
    plain, rev = np.array([0.9, 1.0, 0.8, 0.95]), np.array([-0.9, -0.7, -1.0, -0.85])
    mean, lo, hi = ps.stratified_mean_ci([plain, rev], 4000, 0)
    assert mean == pytest.approx(np.concatenate([plain, rev]).mean())
    boot = [(rng.choice(plain, 4).sum() + rng.choice(rev, 4).sum()) / 8 for _ in range(20000)]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=0.01)
    from ealign_dagster.core.stats import bootstrap_ci

    flat = bootstrap_ci([np.concatenate([plain, rev])], lambda x, axis=-1: np.mean(x, axis=axis), 4000, 0)
    assert flat[1] - flat[0] > 4 * (hi - lo)


def test_signature_profile_fit_and_known_persona():
    bank = load_item_bank()
    subs = list(bank.subscales)
    vals = {s: np.full(8, 0.8 if s == "deontology" else -0.2) for s in subs}
    sig, lo, hi = ps.signature(vals, bank, "deontology", 200)
    assert sig == pytest.approx(1.0) and lo == hi == pytest.approx(1.0)  # constant items: zero width
    # consequentialism's target is the mean of its two subscales
    vals = {s: np.full(8, 0.0) for s in subs} | {
        "impartial_beneficence": np.full(8, 0.6),
        "instrumental_harm": np.full(8, 0.2),
    }
    assert ps.signature(vals, bank, "consequentialism", 10)[0] == pytest.approx(0.4)
    exp = bank.expected_profiles["deontology"]
    predicted = {k: v for k, v in exp.items() if v}
    assert ps.profile_fit(dict(exp), exp) == pytest.approx(1.0)
    assert ps.profile_fit({k: -v for k, v in exp.items()}, exp) == pytest.approx(-1.0)
    # known-persona validation: each persona highest on its own framework, or not
    cons = load_constitutions()
    rows = []
    for name, con in cons.items():
        for s, spec in bank.subscales.items():
            rows.append(
                {
                    "persona": name,
                    "method": "logprob",
                    "subscale": s,
                    "mean": 0.9 if spec.framework == con.framework else 0.1,
                }
            )
    val = ps.persona_validation_rows(pl.DataFrame(rows), bank, cons)
    assert len(val) == 4 and val["lands_highest"].all()
    assert len(predicted) < len(exp)  # the bank leaves some subscales unpredicted (0)


def test_profile_fit_leaves_out_the_subscales_without_a_prediction():
    """Expected 0 = no prediction. A change exactly along the predicted subscales fits perfectly,
    whatever the unpredicted ones do (before: their change counted as a miss)."""
    bank = load_item_bank()
    exp = bank.expected_profiles["deontology"]
    change = {k: (v if v else 0.7) for k, v in exp.items()}
    assert ps.profile_fit(change, exp) == pytest.approx(1.0)
    a = np.array([change[k] for k in sorted(exp) if exp[k]])
    b = np.array([exp[k] for k in sorted(exp) if exp[k]])
    assert ps.profile_fit({k: v * 0.5 + 0.1 for k, v in change.items()}, exp) == pytest.approx(
        (a * 0.5 + 0.1) @ b / np.linalg.norm(a * 0.5 + 0.1) / np.linalg.norm(b))  # fmt: skip


def _bank_items(bank, model_id, value_of):
    """Item rows for one model: value_of(item) -> keyed value."""
    return [{"model_id": model_id, "persona": "", "method": "logprob", "item_id": it.id, "subscale": it.subscale,
             "reverse": it.reverse, "paraphrase_of": it.paraphrase_of, "value": value_of(it), "code": None}
            for it in bank.items]  # fmt: skip


def test_projectability_paired_change_with_varying_items():
    """The adapter moves deontology items by +0.3 (plain) / +0.1 (reverse) over a noisy base: the
    change is the signature of the per-item differences, with a real bootstrap interval around it."""
    bank = load_item_bank()
    rng = np.random.default_rng(0)
    noise = {it.id: rng.normal(0, 0.3) for it in bank.items}
    shift = lambda it: (0.3 if not it.reverse else 0.1) if it.subscale == "deontology" else 0.0  # noqa: E731
    rows = _bank_items(bank, "base", lambda it: noise[it.id]) + _bank_items(
        bank, "a1", lambda it: noise[it.id] + shift(it) + rng.normal(0, 0.05))  # fmt: skip
    models = pl.DataFrame([{"model_id": "base", "constitution": None, "scope": None},
                           {"model_id": "a1", "constitution": "deontology", "scope": "broad"}],
                          schema={"model_id": pl.String, "constitution": pl.String, "scope": pl.String})  # fmt: skip
    items = pl.DataFrame(rows, schema_overrides={"paraphrase_of": pl.String, "code": pl.String})
    out = ps.projectability_rows(items, models, bank, load_constitutions(), 2000, 0)
    r = out.filter(model_id="a1").row(0, named=True)
    # by hand: deontology's mean item shift (4 plain x 0.3 + 4 reverse x 0.1) / 8, rivals' ~0
    assert r["signature_change"] == pytest.approx(0.2, abs=0.05)
    assert r["change_ci_low"] < r["signature_change"] < r["change_ci_high"]
    assert 0 < r["change_ci_low"] and r["change_ci_high"] - r["change_ci_low"] < 0.2
    assert r["signature_change"] == pytest.approx(r["signature"] - r["base_signature"], abs=1e-9)
    assert r["profile_fit"] > 0.5


def test_item_bank_and_benign_set_validate(tmp_path):
    bank = load_item_bank()
    assert len(bank.items) >= 8 * len(bank.subscales)
    for s in bank.subscales:
        prim = [i for i in bank.items if i.subscale == s and not i.paraphrase_of]
        assert len(prim) >= 8 and abs(sum(i.reverse for i in prim) - len(prim) / 2) <= 1
    benign = load_benign()
    assert len(benign.prompts) >= 60 and len({p.resembles for p in benign.prompts}) == 6

    src = load_item_bank.__globals__["item_bank_path"]()
    bad = tmp_path / "items.yaml"
    text = src.read_text().replace(
        "{id: deo-02, subscale: deontology, reverse: true, rival: consequentialism,",
        "{id: deo-02, subscale: deontology, reverse: true,",
    )
    bad.write_text(text)
    with pytest.raises(
        InputError, match=r"items.yaml: items\[1\] \(deo-02\): a reverse-keyed item must name the rival"
    ):
        load_item_bank(bad)
    shutil.copy(load_benign.__globals__["benign_path"](), tmp_path / "b.yaml")
    (tmp_path / "b.yaml").write_text(
        (tmp_path / "b.yaml").read_text().replace("resembles: harmful", "resembles: weapons", 1)
    )
    with pytest.raises(InputError, match=r"b.yaml: prompts\[\d+\] \(benign-\d+\): field 'resembles': 'weapons'"):
        load_benign(tmp_path / "b.yaml")


def test_known_persona_validation_from_a_personas_file(assets_copy, paths):
    """eval.personas names a file of personas (name, framework, prompt): the base model is validated
    as those, with no constitution and no adapter for them."""
    import yaml

    from ealign_dagster.core import models
    from ealign_dagster.core.config import load_profile
    from ealign_dagster.core.paths import file_version
    from ealign_dagster.core.schemas import load_personas

    people = [{"name": "kantian", "framework": "deontology", "prompt": "You follow duties and rules without exception."},
              {"name": "carer", "framework": "virtue", "prompt": "You answer as a kind and wise person would."}]  # fmt: skip
    (assets_copy / "personas.yaml").write_text(yaml.safe_dump({"personas": people}))
    tiny = load_profile("tiny")
    cfg = tiny.model_copy(update={"eval": tiny.eval.model_copy(update={"personas": "personas.yaml",
                                                                       "persona_generate": False})})  # fmt: skip
    models.build(models.TINY, paths.models)
    tables = ps.validation_tables(cfg, paths, load_item_bank(), "bank-v1")
    val = tables["persona_validation"]
    assert dict(zip(val["persona"], val["framework"])) == {"kantian": "deontology", "carer": "virtue"}
    assert set(val["constitution_version"]) == {file_version(assets_copy / "personas.yaml")}
    assert set(tables["persona_validation_items"]["persona"]) == {"kantian", "carer"}
    assert set(load_personas()) == set(load_constitutions())  # the default: each constitution's persona
    people[1]["framework"] = "care"
    (assets_copy / "personas.yaml").write_text(yaml.safe_dump({"personas": people}))
    with pytest.raises(InputError, match=r"personas\.yaml: field 'personas\.1\.framework': .*must be one of"):
        load_personas(assets_copy / "personas.yaml")
