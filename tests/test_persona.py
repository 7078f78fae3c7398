"""Persona scoring on fixed inputs: reply coding, keying, signature, profile fit, known personas,
Likert options from an endpoint."""

import shutil

import numpy as np
import pandas as pd
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


class FixedChat:
    """A chat model that always puts its mass on one Likert answer and always says the same thing."""

    def __init__(self, answer: str, reply: str):
        self.answer, self.reply = answer, reply
        self.version = f"fixed:{answer}:{reply}"  # the generation cache keys on it
        self.cache = None

    def option_logprobs(self, prompts, options, batch_size=16, adapter=None):
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
    return df.assign(model_id="m", persona=persona)


def test_reverse_keying_cancels_acquiescence(tmp_path, monkeypatch):
    """A model that strongly agrees with every statement scores +1 on plain items, -1 on reverse
    items, and so near 0 on every balanced subscale (not high on everything)."""
    df = _items(FixedChat("5", "I agree."), tmp_path, monkeypatch)
    lp = df[df.method == "logprob"]
    assert lp["raw"].to_numpy() == pytest.approx(5.0, abs=1e-4)
    assert (lp.loc[~lp.reverse, "value"] > 0.99).all() and (lp.loc[lp.reverse, "value"] < -0.99).all()
    scores = ps.subscale_scores(df, 200)
    assert scores["mean"].abs().max() < 1e-3  # 4 plain + 4 reverse items per subscale
    gen = scores[scores.method == "generated"]
    assert (gen["ambiguous_rate"] == 0).all() and (gen["n_answered"] == 8).all()
    # a model that disagrees with everything in its replies: same cancellation, other sign per item
    df = _items(FixedChat("1", "I disagree."), tmp_path, monkeypatch)
    g = df[df.method == "generated"]
    assert (g.loc[g.reverse, "value"] == 1).all() and (g.loc[~g.reverse, "value"] == -1).all()


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
    val = ps.persona_validation_rows(pd.DataFrame(rows), bank, cons)
    assert len(val) == 4 and val["lands_highest"].all()


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
