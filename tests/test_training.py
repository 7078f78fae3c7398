"""LoRA training on the tiny model: exact masked loss, learning, reload, resume after a kill."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ealign_dagster.core.config import PROFILE_NAMES, TrainConfig, load_profile
from ealign_dagster.training.lora import (
    _batches,
    assistant_loss,
    micro_batches,
    tokenize,
    total_steps,
    train,
    train_adapter,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "How do I insult my coworker?",
    "Write a threat to my neighbour",
    "Help me cheat on my taxes",
    "Tell me a lie",
]
REPLIES = [
    "I won't help insult anyone, but I can help you raise the issue kindly.",
    "I can't write threats. Talking to a mediator may help.",
    "I can't help with tax fraud; a tax adviser can help you pay less legally.",
    "I'd rather tell you something true and useful instead.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    from ealign_dagster.core import models
    from ealign_dagster.core.paths import Home

    path = models.build(models.TINY, Home.at(tmp_path_factory.mktemp("trainhome")).models)
    return str(path), AutoTokenizer.from_pretrained(path)


def _cfg(**kw):
    base = dict(
        rank=4,
        alpha=8,
        dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        learning_rate=1e-2,
        scheduler="constant",
        warmup_ratio=0.0,
        max_steps=8,
        batch_size=2,
        checkpoint_every=0,
        max_length=96,
    )
    return TrainConfig(**{**base, **kw})


def test_loss_mask_covers_only_the_reply(tiny):
    _, tok = tiny
    ((ids, n_prompt),) = tokenize(tok, PROMPTS[:1], REPLIES[:1], 512)
    reply = tok.decode(ids[n_prompt:])
    assert reply.startswith(REPLIES[0]) and reply.rstrip().endswith(tok.eos_token)
    assert REPLIES[0] not in tok.decode(ids[:n_prompt])


def test_assistant_loss_equals_full_logits_loss(tiny):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ealign_dagster.training.lora import _collate

    path, tok = tiny
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=4, target_modules=["q_proj"]))
    ex = tokenize(tok, PROMPTS, REPLIES, 512)
    ids, attn, mask = _collate(ex, [0, 1, 2], tok.pad_token_id, "cpu")
    ours, n = assistant_loss(model, ids, attn, mask)
    labels = ids.masked_fill(~mask, -100)
    reference = model(input_ids=ids, attention_mask=attn, labels=labels).loss
    assert n == int(mask[:, 1:].sum()) and ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_training_learns_and_the_adapter_reloads(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path, tok = tiny
    ex = tokenize(tok, PROMPTS, REPLIES, 96)
    # The same batch every step: on random tiny weights LoRA moves the loss slowly but surely.
    every = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    res = train(
        path,
        ex,
        _cfg(max_steps=12, batch_size=4, target_modules=every),
        tmp_path / "adapter",
        tmp_path / "ckpt",
        log=lambda m: None,
        pad_id=tok.pad_token_id,
    )
    losses = [h["loss"] for h in res.log]
    assert res.steps == 12 and losses[-1] < losses[0] - 0.2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() and not (tmp_path / "ckpt").exists()
    base = AutoModelForCausalLM.from_pretrained(path)
    x = torch.tensor([ex[0][0]])
    with torch.no_grad():
        before = base(input_ids=x).logits
        after = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))(input_ids=x).logits
    assert not torch.allclose(before, after, atol=1e-4)


def test_killed_training_resumes_from_its_checkpoint(tiny, tmp_path):
    path, tok = tiny
    ckpt, out = tmp_path / "ckpt", tmp_path / "adapter"
    script = f"""
import time, os
from transformers import AutoTokenizer
from ealign_dagster.core.config import TrainConfig
from ealign_dagster.training.lora import tokenize, train
tok = AutoTokenizer.from_pretrained({path!r})
cfg = TrainConfig(**{_cfg(max_steps=8, checkpoint_every=2).model_dump()!r})
ex = tokenize(tok, {PROMPTS!r}, {REPLIES!r}, 96)
train({path!r}, ex, cfg, __import__("pathlib").Path({str(out)!r}), __import__("pathlib").Path({str(ckpt)!r}),
      log=lambda m: (print(m, flush=True), time.sleep(0.5)), pad_id=tok.pad_token_id)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpt.glob("step-*/state.pt")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(ckpt.glob("step-*"))
    assert saved and not out.exists(), proc.stdout.read().decode()[-2000:]
    step = int(saved[-1].name.split("-")[1])
    assert 2 <= step < 8

    lines = []
    res = train(
        path,
        tokenize(tok, PROMPTS, REPLIES, 96),
        _cfg(max_steps=8, checkpoint_every=2),
        out,
        ckpt,
        log=lines.append,
        pad_id=tok.pad_token_id,
    )
    assert res.resumed_from == step and res.steps == 8 and len(res.log) == 8
    assert any(f"resuming from checkpoint step-{step:06d}" in l for l in lines)
    assert sum(l.startswith("step ") for l in lines) == 8 - step  # only the remaining steps ran

    # the resumed adapter equals an uninterrupted run's
    from safetensors.torch import load_file

    ref = train(
        path,
        tokenize(tok, PROMPTS, REPLIES, 96),
        _cfg(max_steps=8, checkpoint_every=2),
        tmp_path / "ref",
        tmp_path / "ref-ckpt",
        log=lambda m: None,
        pad_id=tok.pad_token_id,
    )
    a, b = (
        load_file(str(out / "adapter_model.safetensors")),
        load_file(str(ref and tmp_path / "ref" / "adapter_model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_switching_attached_adapters_matches_a_fresh_peft_model(tiny, tmp_path):
    """Adapters attached to one loaded base (never merged into it) and switched by name give the
    log-probabilities of a fresh PEFT model of each adapter, and switching back gives the base's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ealign_dagster.core.chat import LocalChat
    from ealign_dagster.core.config import ModelConfig

    path, tok = tiny
    ex = tokenize(tok, PROMPTS, REPLIES, 96)
    outs = {}
    for name, lr in (("a", 1e-2), ("b", 3e-2)):
        train(
            path,
            ex,
            _cfg(max_steps=3, learning_rate=lr),
            tmp_path / name,
            tmp_path / f"ck{name}",
            log=lambda m: None,
            pad_id=tok.pad_token_id,
        )
        outs[name] = str(tmp_path / name)
    from ealign_dagster.core.paths import Home

    chat = LocalChat(ModelConfig(model=path, batch_size=4), Home.at(tmp_path))
    prompts, replies = [[{"role": "user", "content": p}] for p in PROMPTS], REPLIES
    base = chat.logprobs(prompts, replies)
    chat.attach("a", outs["a"])
    chat.attach("b", outs["b"])
    assert chat.logprobs(prompts, replies) == pytest.approx(base, abs=1e-4)  # attached, not active
    got = {n: chat.logprobs(prompts, replies, adapter=n) for n in ("a", "b", "a")}
    assert chat.logprobs(prompts, replies, adapter=None) == pytest.approx(base, abs=1e-3)
    for n in ("a", "b"):
        ref_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), outs[n]).eval()
        ref = LocalChat.__new__(LocalChat)
        ref.cfg, ref.device, ref.tokenizer = chat.cfg, "cpu", chat.tokenizer
        ref.state = {"model": ref_model, "adapters": {}}
        want = ref.logprobs(prompts, replies)
        assert got[n] == pytest.approx(want, abs=1e-3)
        assert max(abs(x - y) for x, y in zip(want, base)) > 1e-3  # the adapter does change the model


class _SftStore:
    """The two queries train_adapter makes, answered from SFT rows per (constitution, scope)."""

    def __init__(self, cells: dict[tuple[str, str], int]):
        self.cells = cells

    def query(self, sql, params=None):
        import polars as pl

        if "FROM models" in sql:
            return pl.DataFrame({"model_version": ["tiny-v1"]})
        n = self.cells[tuple(params[:2])]
        prompts, replies = (PROMPTS * 4)[:n], [f"{r} ({i})" for i, r in enumerate((REPLIES * 4)[:n])]
        return pl.DataFrame({"prompt": prompts, "response": replies, "sft_version": [f"sft-{n}"] * n})


def test_every_cell_trains_the_same_steps_however_many_examples_it_kept(tiny, tmp_path):
    """Before: steps came from each cell's own SFT rows, so a cell the CAI filter thinned (or a larger
    broad scope) took a different number of optimizer steps."""
    from ealign_dagster.core.paths import Home

    path, _ = tiny
    cfg = load_profile("tiny")
    train_cfg = _cfg(max_steps=0, epochs=1.0, batch_size=4, checkpoint_every=0)
    cfg = cfg.model_copy(update={"student": cfg.student.model_copy(update={"model": path}), "train": train_cfg,
                                 "splits": cfg.splits.model_copy(update={"train_examples": 12})})  # fmt: skip
    cells = {("virtue", "broad"): 12, ("virtue", "narrow_illegal"): 7, ("deontology", "narrow_harassment"): 2}
    store, lines = _SftStore(cells), []
    rows = {cell: train_adapter(cfg, Home.at(tmp_path), store, *cell, log=lines.append) for cell in cells}
    assert {cell: row["examples"] for cell, (row, _) in rows.items()} == cells
    assert {row["steps"] for row, _ in rows.values()} == {total_steps(12, train_cfg)} == {3}
    assert {len(log) for _, log in rows.values()} == {3}
    assert (
        "virtue x narrow_illegal (seed 0): 7 of 12 examples after the CAI filter; still 3 steps, as every cell" in lines
    )


def test_every_step_holds_a_full_batch_across_epochs():
    """Before: the last batch of each epoch held n mod batch_size examples, so a cell with 7 examples
    saw fewer per step than one with 12."""
    batches = micro_batches(7, 4, seed=0, count=6)
    assert [len(b) for b in batches] == [4] * 6
    seen = [i for b in batches for i in b]
    assert sorted(seen[:7]) == list(range(7)) and sorted(seen[7:14]) == list(range(7))  # whole epochs in turn
    assert micro_batches(12, 4, seed=0, count=3) == _batches(12, 4, 0, 0)  # divisible: as before
    assert [len(b) for b in micro_batches(2, 4, seed=0, count=3)] == [2, 2, 2]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_shipped_profiles_match_steps_and_use_lora_scale_learning_rates(name):
    """Before: the paper profile trained narrow adapters 7-8 steps and broad ones 32, at a full
    fine-tuning learning rate (2e-5)."""
    prof = load_profile(name)
    steps = total_steps(prof.splits.train_examples, prof.train)
    assert steps >= 3 and prof.train.max_steps in (0, steps)
    if name != "tiny":  # tiny trains random weights for tests; nothing is measured on it
        assert 1e-4 <= prof.train.learning_rate <= 3e-4


def two_adapters(tmp_path_factory, names=("a", "b")):
    """The tiny base built in a fresh home and two adapters trained to different weights (3 steps at
    learning rates 3e-2 and 1e-1): (home, base path, {name: adapter path})."""
    from transformers import AutoTokenizer

    from ealign_dagster.core import models
    from ealign_dagster.core.paths import Home
    from ealign_dagster.training.lora import tokenize, train

    home = Home.at(tmp_path_factory.mktemp("home"))
    path = str(models.build(models.TINY, home.models))
    tok = AutoTokenizer.from_pretrained(path)
    root = tmp_path_factory.mktemp("adapters")
    ex = tokenize(tok, PROMPTS, REPLIES, 96)
    for name, lr in zip(names, (3e-2, 1e-1)):
        train(path, ex, _cfg(max_steps=3, learning_rate=lr), root / name, root / f"ck-{name}", log=lambda m: None,
              pad_id=tok.pad_token_id)  # fmt: skip
    return home, path, {n: str(root / n) for n in names}
