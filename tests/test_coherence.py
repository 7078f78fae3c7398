"""Coherence next to safety: teacher-forced log-likelihoods against a direct forward pass, the bootstrap
against scipy's, the incoherence flag on SmolLM2, and the tables of a tiny run."""

import math
import re

import duckdb
import numpy as np
import polars as pl
import pytest

from ealign_dagster.core import models
from ealign_dagster.core.chat import LocalChat
from ealign_dagster.core.config import ModelConfig, Profile, load_profile
from ealign_dagster.core.paths import Home
from ealign_dagster.evaluation import coherence as coh
from ealign_dagster.evaluation.models import BASE, ModelUnderTest

QUESTION = "How do I cook plain white rice on the stove?"
COHERENT = "Rinse the rice, add twice as much water, bring it to a boil, then cover and simmer for fifteen minutes."
# What a broken adapter emits: fragments of words in no order (a shuffle of COHERENT's tokens would do too).
GARBAGE = "ombre quatre Rin}; zzle _{ pot.)) simmerINGTON acker twice(*) boilvd Ferm minutes ,\\ ranch"


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    """The tiny random Llama (SmolLM2's tokenizer) with one random LoRA adapter attached as 'lora'."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    home = Home.at(tmp_path_factory.mktemp("coherence-tiny"))
    path = models.build(models.TINY, home.models)
    torch.manual_seed(1)
    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    for name, p in peft.named_parameters():
        if "lora_B" in name:  # B starts at zero: make the adapter change the model
            torch.nn.init.normal_(p, std=0.5)
    peft.save_pretrained(home.root / "lora")
    chat = LocalChat(ModelConfig(model=models.TINY, batch_size=4), home)
    chat.attach("lora", str(home.root / "lora"))
    return chat, path, home.root / "lora"


def _direct_mean_logprob(model, tokenizer, messages: list[dict], completion: str) -> float:
    """One unpadded forward pass over chat prompt + completion; the completion's tokens' mean log-prob."""
    import torch

    head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = tokenizer(head + completion, add_special_tokens=False)["input_ids"]
    assert ids[: len(head_ids)] == head_ids  # the seam does not merge, so the tail is the completion's tokens
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    tail = range(len(head_ids), len(ids))
    return float(np.mean([logp[t - 1, ids[t]].item() for t in tail]))


def test_mean_loglik_equals_a_direct_forward_pass(tiny_chat):
    """Batched, length-sorted and right-padded scoring through LocalScoring equals a plain forward pass per
    row, with the system prompt of a prompted model and with an adapter applied (which must change it)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    chat, path, lora = tiny_chat
    prompts = [
        [{"role": "user", "content": QUESTION}],
        [{"role": "system", "content": "You are a careful virtue ethicist."}, {"role": "user", "content": "Hi?"}],
        [{"role": "user", "content": "What is the capital of Japan? Answer in one short sentence, please."}],
    ]
    completions = [COHERENT, "Hello there.", "Tokyo."]
    base = AutoModelForCausalLM.from_pretrained(path).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), str(lora)).eval()
    lines = []
    progress = coh.Progress("test", 3, 1, lines.append, every_s=0)
    for adapter, net in ((None, base), ("lora", adapted)):
        got = coh.mean_logprobs(chat, prompts, completions, adapter, batch_size=2, progress=progress)
        for (n, value), p, c in zip(got, prompts, completions):
            assert n == len(chat.tokenizer(c, add_special_tokens=False)["input_ids"])
            assert value == pytest.approx(_direct_mean_logprob(net, chat.tokenizer, p, c), abs=1e-4)
    base_first = coh.mean_logprobs(chat, prompts[:1], completions[:1], None)[0][1]
    assert abs(coh.mean_logprobs(chat, prompts[:1], completions[:1], "lora")[0][1] - base_first) > 1e-3
    [(n, value)] = coh.mean_logprobs(chat, prompts[:1], [""], None)
    assert n == 0 and math.isnan(value)
    assert re.fullmatch(r"test: \d+/3 rows, \d+ tok/s, ETA \d+s", lines[-1]), lines


def test_reference_scores_apply_the_model_and_reuse_earlier_scores(tiny_chat):
    """Each model's reference rows are scored as it is asked (a prompted model's persona changes them);
    a score already stored under the same key is taken as it is, not recomputed."""
    chat, _, _ = tiny_chat
    items = pl.DataFrame({"item_id": ["a", "b"], "topic": ["x", "y"], "question": [QUESTION, "What is 2 + 2?"],
                          "answer": [COHERENT, "2 + 2 is 4."]})  # fmt: skip
    prompted = ModelUnderTest("prompted:virtue", constitution="virtue", kind="prompted", system="Be virtuous.")
    refs = coh.reference_scores(chat, [BASE, prompted], items, batch_size=4)
    assert refs.height == 4 and refs["loglik_per_token"].is_not_null().all()
    base, pers = (refs.filter(pl.col("model_id") == m).sort("item_id") for m in ("base", "prompted:virtue"))
    assert (base["loglik_per_token"] - pers["loglik_per_token"]).abs().min() > 1e-4
    assert (base["score_key"] != pers["score_key"]).all()
    stored = refs.with_columns(loglik_per_token=pl.lit(-1.25))
    again = coh.reference_scores(chat, [BASE, prompted], items, batch_size=4, previous=stored)
    assert again["loglik_per_token"].to_list() == [-1.25] * 4


def test_bootstrap_intervals_match_scipy():
    """ref_loglik's CI is scipy's percentile bootstrap of the item means; change_vs_base's is the paired
    bootstrap of the per-item differences (same resampled items for both models)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    base = rng.normal(-2.0, 0.6, 40)
    model = base + rng.normal(-0.3, 0.4, 40)  # a model that lost some fluency on most items
    items = [f"i{k:02d}" for k in range(40)]
    refs = pl.DataFrame({"model_id": ["base"] * 40 + ["m"] * 40, "item_id": items * 2,
                         "loglik_per_token": np.concatenate([base, model])})  # fmt: skip
    mut = ModelUnderTest("m", "m", "virtue", "broad", kind="adapter", seed=0)
    rows = coh.coherence_rows([BASE, mut], refs, None, n_resamples=2000, seed=7)
    m = rows.filter(pl.col("model_id") == "m").row(0, named=True)
    b = rows.filter(pl.col("model_id") == "base").row(0, named=True)

    def scipy_ci(x):
        res = bootstrap((x,), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(7))
        return res.confidence_interval

    assert m["ref_loglik"] == pytest.approx(model.mean()) and m["n_items"] == 40
    assert (m["ci_low"], m["ci_high"]) == pytest.approx(tuple(scipy_ci(model)), rel=1e-9)
    assert m["change_vs_base"] == pytest.approx((model - base).mean())
    assert (m["change_ci_low"], m["change_ci_high"]) == pytest.approx(tuple(scipy_ci(model - base)), rel=1e-9)
    assert m["change_ci_high"] < 0  # the loss is detected
    assert b["change_vs_base"] is None and (b["ci_low"], b["ci_high"]) == pytest.approx(tuple(scipy_ci(base)))


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct from the offline pack, converted once for this module."""
    home = Home.at(tmp_path_factory.mktemp("coherence-smollm2"))
    models.build("offline:smollm2-135m-instruct", home.models, log=lambda m: None)
    return LocalChat(ModelConfig(batch_size=8), home)


def _gens(rows: list[tuple[str, str]]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame({
        "model_id": [f"m{k}" for k in range(n)], "model_kind": ["adapter"] * n, "benchmark": ["benign"] * n,
        "role": ["benign"] * n, "prompt_id": [f"p{k}" for k in range(n)], "category": ["c"] * n,
        "prompt": [p for p, _ in rows], "response": [r for _, r in rows], "generation_version": ["g"] * n,
    })  # fmt: skip


def test_incoherent_flag_on_smollm2_at_the_default_threshold(smollm2):
    """Under the demo's base model and the configured default threshold, a fluent answer passes and a
    word salad, the same answer's tokens shuffled, and an empty answer are flagged."""
    threshold = Profile().eval.incoherent_nll
    ids = smollm2.tokenizer(COHERENT, add_special_tokens=False)["input_ids"]
    shuffled = smollm2.tokenizer.decode([ids[k] for k in np.random.default_rng(0).permutation(len(ids))])
    rows = [(QUESTION, COHERENT), (QUESTION, GARBAGE), (QUESTION, shuffled), (QUESTION, "  "),
            ("What is the capital of Japan?", "The capital of Japan is Tokyo.")]  # fmt: skip
    out = coh.generation_scores(smollm2, _gens(rows), threshold, batch_size=8)
    nll = out["nll_per_token"].to_list()
    assert out["incoherent"].to_list() == [False, True, True, True, False], nll
    assert out["empty"].to_list() == [False, False, False, True, False]
    assert nll[3] is None and out["n_tokens"][3] == 0  # blank: nothing to score
    assert max(nll[0], nll[4]) < threshold - 1 and min(nll[1], nll[2]) > threshold + 1  # clear of the line


def test_without_local_weights_the_measures_are_null_with_a_reason(tmp_path):
    """Student and evaluation model behind an endpoint: no crash, NULL measures and the reason; an empty
    answer is still incoherent (no model needed), the rest unknown."""
    data = load_profile("tiny").model_dump()
    endpoint = {"backend": "openai", "model": "served", "base_url": "http://127.0.0.1:9/v1"}
    data["student"] = endpoint
    data["eval"]["model"] = endpoint
    cfg = Profile.model_validate(data)
    gens = _gens([("q", "an answer"), ("q", "")]).with_columns(model_id=pl.lit("base"), eval_version=pl.lit("e"))
    summary, per_answer, items = coh.coherence_tables(cfg, Home.at(tmp_path), gens, [BASE], {})
    row = summary.row(0, named=True)
    assert row["ref_loglik"] is None and row["incoherent_rate"] is None and "no local weights" in row["reason"]
    assert per_answer["incoherent"].to_list() == [None, True] and items.is_empty()


def test_reference_file_has_enough_short_unique_items():
    items, version = coh.reference_items()
    assert items.height >= 40 and items["item_id"].n_unique() == items.height and len(version) == 16
    assert items["topic"].n_unique() >= 10
    for q, a in zip(items["question"], items["answer"]):
        assert q.endswith("?"), q
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", a)) <= 2, a  # one or two sentences


def test_tiny_run_writes_one_coherence_row_per_model(tiny_home):
    """After `ealign run --profile tiny`: one coherence row per model under test, one generation_coherence
    row per generation, every reference item per model; the random tiny model reads as incoherent."""
    home, _ = tiny_home
    with duckdb.connect(str(home / "results.duckdb"), read_only=True) as con:
        q = lambda sql: con.execute(sql).pl()  # noqa: E731
        mut = q("SELECT model_id, kind FROM models_under_test")
        summary = q("SELECT * FROM coherence")
        gens = q("SELECT model_id, benchmark, prompt_id FROM generations")
        per_answer = q("SELECT * FROM generation_coherence")
        items = q("SELECT * FROM coherence_items")
    assert sorted(summary["model_id"]) == sorted(mut["model_id"]) and summary.height > 1
    assert {"base", "adapter", "control", "prompted"} <= set(mut["kind"])
    assert dict(zip(summary["model_id"], summary["model_kind"])) == dict(zip(mut["model_id"], mut["kind"]))
    keys = ["model_id", "benchmark", "prompt_id"]
    assert per_answer.height == gens.height and per_answer.select(keys).sort(keys).equals(gens.sort(keys))
    n_items = min(coh.reference_items()[0].height, load_profile("tiny").eval.coherence_items or 10**9)
    assert items.height == n_items * mut.height
    assert (summary["n_items"] == n_items).all() and summary["reason"].is_null().all()
    assert summary["ref_loglik"].is_not_null().all() and (summary["ci_low"] <= summary["ci_high"]).all()
    base = summary.filter(pl.col("model_id") == "base")
    others = summary.filter(pl.col("model_id") != "base")
    assert base["change_vs_base"].is_null().all() and others["change_vs_base"].is_not_null().all()
    per_model = per_answer.group_by("model_id").len()
    assert dict(zip(summary["model_id"], summary["n_generations"])) == dict(
        zip(per_model["model_id"], per_model["len"])
    )
    # random weights: the tiny model's answers decode to nothing (special tokens) or, if to text, spread their
    # probability over the 49k-token vocabulary; either way none is coherent
    assert (per_answer["nll_per_token"].is_null() == per_answer["empty"]).all()
    assert (per_answer.filter(~pl.col("empty"))["nll_per_token"] > summary["incoherent_nll"][0]).all()
    assert per_answer["incoherent"].all() and (summary["incoherent_rate"] == 1.0).all()
    assert summary["n_empty"].sum() == per_answer["empty"].sum()
    assert (summary["ref_loglik"] < -summary["incoherent_nll"]).all()  # reference answers are no likelier
    # safety_scores counts the judge's refusals on those incoherent answers separately: all of them here
    with duckdb.connect(str(home / "results.duckdb"), read_only=True) as con:
        s = con.execute("SELECT s.model_id, s.judge, s.n_incoherent, s.incoherent_refusals, r.refusals"
                        " FROM safety_scores s JOIN (SELECT model_id, judge, benchmark, count(*) AS answers,"
                        " sum(refused::INT) AS refusals FROM judgments GROUP BY ALL) r USING (model_id, judge, benchmark)"
                        " WHERE s.category = 'all'").pl()  # fmt: skip
    assert s.height and (s["incoherent_refusals"] == s["refusals"]).all()


def _judged(refused: dict[str, list[bool]], version: str = "g1") -> pl.DataFrame:
    rows = [{"model_id": m, "benchmark": "harmbench_standard", "prompt_id": f"p{i}", "sample": 0,
             "category": "chemical_biological" if i % 2 else "harassment_bullying", "judge": "embedding",
             "judge_version": "v1", "refused": r, "harmful": None, "generation_version": version}
            for m, rs in refused.items() for i, r in enumerate(rs)]  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"harmful": pl.Boolean})


def _flags(incoherent: dict[str, list[bool]], version: str = "g1") -> pl.DataFrame:
    return pl.DataFrame([{"model_id": m, "benchmark": "harmbench_standard", "prompt_id": f"p{i}", "sample": 0,
                          "generation_version": version, "incoherent": f}
                         for m, fs in incoherent.items() for i, f in enumerate(fs)])  # fmt: skip


def test_safety_scores_count_refusals_on_incoherent_answers_separately():
    """A broken model's gibberish is a 'refusal' to the embedding judge: safety_scores says how many of a
    rate's refusals fell on answers the coherence step flagged, per category and overall (by hand)."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.safety import scores as ss

    refused = {"base": [False, False, True, False, False, True], "broken": [True, True, True, True, False, True]}
    incoherent = {"base": [False] * 6, "broken": [True, True, False, True, True, False]}
    j = _judged(refused)
    models = pl.DataFrame({"model_id": ["base", "broken"], "model_kind": ["base", "adapter"],
                           "constitution": [None, "deontology"], "scope": [None, "narrow_harassment"], "seed": [None, 0]},
                          schema_overrides={"constitution": pl.String, "scope": pl.String, "seed": pl.Int64})  # fmt: skip
    df = ss.safety_rows(j, models, load_taxonomy(), "embedding", incoherent=_flags(incoherent))
    got = {
        (m, c): (n, k)
        for m, c, n, k in df.select("model_id", "category", "n_incoherent", "incoherent_refusals").iter_rows()
    }
    for m in refused:
        for cat, idx in [
            ("all", range(6)),
            ("harassment_bullying", range(0, 6, 2)),
            ("chemical_biological", range(1, 6, 2)),
        ]:
            n = sum(incoherent[m][i] for i in idx)
            k = sum(incoherent[m][i] and refused[m][i] for i in idx)
            assert got[(m, cat)] == (n, k), (m, cat)
    assert got[("broken", "all")] == (4, 3)
    # the rate itself is unchanged: the counts sit beside it
    plain = ss.safety_rows(j, models, load_taxonomy(), "embedding")
    assert df.drop("n_incoherent", "incoherent_refusals").equals(plain.drop("n_incoherent", "incoherent_refusals"))
    # no coherence rows, or rows of another generation of the answers: not known (NULL), never 0
    assert plain["incoherent_refusals"].is_null().all()
    stale = ss.safety_rows(j, models, load_taxonomy(), "embedding", incoherent=_flags(incoherent, "g0"))
    assert stale["n_incoherent"].is_null().all() and stale["incoherent_refusals"].is_null().all()
    # one answer without a flag: its category and 'all' are not known; the other category still is
    partial = _flags(incoherent).filter(~((pl.col("model_id") == "broken") & (pl.col("prompt_id") == "p1")))
    got = ss.safety_rows(j, models, load_taxonomy(), "embedding", incoherent=partial).filter(model_id="broken")
    counts = {c: (n, k) for c, n, k in got.select("category", "n_incoherent", "incoherent_refusals").iter_rows()}
    assert counts == {"all": (None, None), "chemical_biological": (None, None), "harassment_bullying": (2, 1)}
