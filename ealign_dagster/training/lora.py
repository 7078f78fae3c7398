"""LoRA SFT of the student: loss on assistant tokens only, logits only where the loss needs them,
dynamic padding, checkpoints that a killed run resumes from, atomic adapter output."""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ealign_dagster.core.config import TrainConfig


@dataclass
class TrainResult:
    steps: int
    train_loss: float  # mean loss over the last optimizer steps (up to 10)
    tokens: int  # assistant tokens the loss was computed on
    seconds: float
    resumed_from: int  # step of the checkpoint this run started from (0 = fresh)
    device: str
    dtype: str
    peak_memory_mb: float
    log: list[dict] = field(default_factory=list)  # per step: step, loss, tokens, seconds


def tokenize(tokenizer, prompts: list[str], responses: list[str], max_length: int) -> list[tuple[list[int], int]]:
    """(input ids, number of prompt tokens) per example, with the tokenizer's chat template.
    The loss covers the tokens after the prompt: the assistant reply and its end-of-turn token."""
    out = []
    for p, r in zip(prompts, responses):
        user = [{"role": "user", "content": p}]
        head = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": r}], tokenize=False)
        if not full.startswith(head):
            raise ValueError("the chat template does not extend the prompt with the reply; cannot mask the prompt")
        head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        tail_ids = tokenizer(full[len(head) :].rstrip("\n"), add_special_tokens=False)["input_ids"]
        ids = (head_ids + tail_ids)[:max_length]
        if len(ids) > len(head_ids):
            out.append((ids, len(head_ids)))
    return out


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def micro_batches(n: int, batch_size: int, seed: int, count: int) -> list[list[int]]:
    """`count` micro-batches of example indices: a seeded shuffle per epoch, the epochs read as one
    stream, so that every batch holds batch_size examples (fewer only when n is) whether or not n
    divides by it; cells with different numbers of examples then see as many per optimizer step."""
    stream, epoch = [], 0
    while len(stream) < count * batch_size:
        stream += [i for b in _batches(n, n, seed, epoch) for i in b]
        epoch += 1
    width = min(batch_size, n)
    return [stream[i * width : (i + 1) * width] for i in range(count)]


def assistant_loss(model, input_ids, attention_mask, loss_mask):
    """Cross-entropy on assistant tokens, computing output-layer logits only at those positions:
    with a 49k vocabulary the output layer dominates a small model's step."""
    import torch.nn.functional as F

    inner = model.get_base_model()
    hidden = inner.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    sel = loss_mask[:, 1:]
    logits = inner.lm_head(hidden[:, :-1][sel]).float()
    targets = input_ids[:, 1:][sel]
    return F.cross_entropy(logits, targets), int(sel.sum())


def _collate(examples, idx, pad_id, device):
    import torch

    width = max(len(examples[i][0]) for i in idx)  # pad to the batch's longest, not a fixed length
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(idx), width), dtype=torch.long)
    loss_mask = torch.zeros((len(idx), width), dtype=torch.bool)
    for row, i in enumerate(idx):
        seq, n_prompt = examples[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        attn[row, : len(seq)] = 1
        loss_mask[row, n_prompt : len(seq)] = True
    return ids.to(device), attn.to(device), loss_mask.to(device)


def _peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    """Optimizer steps for `epochs` passes over n_examples (cfg.max_steps when set). The adapters of a
    profile all pass splits.train_examples here, not the examples their cell kept, to be matched."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_epoch = math.ceil(math.ceil(n_examples / cfg.batch_size) / cfg.grad_accum)
    return max(1, math.ceil(per_epoch * cfg.epochs))


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = sorted(p for p in ckpt_dir.glob("step-*") if (p / "state.pt").exists())
    return done[-1] if done else None


def train(
    base_path: str,
    examples: list[tuple[list[int], int]],
    cfg: TrainConfig,
    out_dir: Path,
    ckpt_dir: Path,
    log=print,
    pad_id: int = 0,
    steps: int | None = None,
) -> TrainResult:
    """Train one adapter into out_dir (written atomically) for `steps` optimizer steps (default: from
    the examples given, total_steps). Checkpoints go to ckpt_dir every cfg.checkpoint_every steps; if
    ckpt_dir holds one, training continues from it."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, get_scheduler

    if not examples:
        raise ValueError("no training examples")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(cfg.dtype)
    if dtype is None:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype).to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    steps = steps or total_steps(len(examples), cfg)
    sched = get_scheduler(cfg.scheduler, opt, num_warmup_steps=int(cfg.warmup_ratio * steps), num_training_steps=steps)

    step, history = 0, []
    ckpt = _latest_checkpoint(ckpt_dir)
    if ckpt is not None:
        state = torch.load(ckpt / "state.pt", weights_only=False)
        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, history = state["step"], state["history"]
        log(f"resuming from checkpoint {ckpt.name} (step {step}/{steps})")
    resumed_from = step

    micro = micro_batches(len(examples), cfg.batch_size, cfg.seed, steps * cfg.grad_accum)
    start = time.perf_counter()
    elapsed_before = history[-1]["seconds"] if history else 0.0
    while step < steps:
        t0, loss_sum, tok_sum = time.perf_counter(), 0.0, 0
        for k in range(cfg.grad_accum):
            ids, attn, mask = _collate(examples, micro[step * cfg.grad_accum + k], pad_id, device)
            with torch.autocast(
                device_type=device, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16 and device == "cuda"
            ):
                loss, n = assistant_loss(model, ids, attn, mask)
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.item() / cfg.grad_accum
            tok_sum += n
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seconds = elapsed_before + time.perf_counter() - start
        history.append({"step": step, "loss": loss_sum, "tokens": tok_sum, "seconds": round(seconds, 3)})
        dt = time.perf_counter() - t0
        log(
            f"step {step}/{steps} loss {loss_sum:.4f}, {tok_sum / dt:.0f} tok/s, {dt:.2f} s/step, ETA {(steps - step) * dt:.0f}s"
        )
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
            _save_checkpoint(model, opt, sched, step, history, ckpt_dir)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)  # the per-step log goes to DuckDB's train_log, not next to the weights
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    tail = [h["loss"] for h in history[-10:]]
    return TrainResult(
        steps=step,
        train_loss=sum(tail) / len(tail),
        tokens=sum(h["tokens"] for h in history),
        seconds=history[-1]["seconds"],
        resumed_from=resumed_from,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        peak_memory_mb=round(_peak_mb(), 1),
        log=history,
    )


def _save_checkpoint(model, opt, sched, step, history, ckpt_dir: Path) -> None:
    import torch

    tmp = ckpt_dir / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(
        {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "history": history,
        },
        tmp / "state.pt",
    )
    final = ckpt_dir / f"step-{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in ckpt_dir.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


# Part of every adapter id: bump it when a change to the training code changes the weights it makes.
TRAINER_VERSION = 2  # 2: full batches across epoch boundaries (micro_batches)


def _reusable(out: Path, record: Path) -> tuple[dict, list[dict]] | None:
    """A finished adapter of this id (its weights unchanged since): its registry row and step log."""
    from ealign_dagster.core.paths import folder_sha256

    if not record.exists() or not (out / "adapter_config.json").exists():
        return None
    saved = json.loads(record.read_text(encoding="utf-8"))
    return (saved["row"], saved["steps"]) if folder_sha256(out) == saved["row"]["sha256"] else None


def train_adapter(cfg, home, store, name: str, scope: str, seed: int = 0, log=None) -> tuple[dict, list[dict]]:
    """Train (or resume) the LoRA adapter of one constitution x scope x replicate seed on its SFT
    examples (training seed train.seed + seed): its registry row and per-step log. Every cell of a profile takes the same optimizer steps (from
    splits.train_examples). The adapter id hashes everything that determines its weights, so an
    adapter already trained under this id (weights checked against their checksum) is reused."""
    from ealign_dagster.core.models import load_tokenizer, resolve
    from ealign_dagster.core.paths import folder_sha256, home_relative, value_version

    sft = store.query(
        "SELECT prompt, response, sft_version FROM sft_examples WHERE constitution = ? AND scope = ? AND seed = ?"
        " ORDER BY prompt_id",
        [name, scope, seed],
    )
    if sft.is_empty():
        raise ValueError(f"sft_examples has no rows for {name} x {scope}, seed {seed}: materialize sft_datasets first")
    base_path = resolve(cfg.student.model, home.models)
    base_version = store.query("SELECT model_version FROM models WHERE role = 'student'")["model_version"][0]
    train_cfg = cfg.train.model_copy(update={"seed": cfg.train.seed + seed})
    sft_version, hyper = sft["sft_version"][0], train_cfg.model_dump()
    steps = total_steps(cfg.splits.train_examples, cfg.train)
    spec = {"constitution": name, "scope": scope, "seed": train_cfg.seed, "base": base_version, "sft": sft_version,
            "hyper": hyper, "steps": steps, "trainer": TRAINER_VERSION}  # fmt: skip
    adapter_id = value_version(spec)[:12]
    root = home.adapters / name / scope
    out, record = root / adapter_id, root / f"{adapter_id}.json"
    if (done := _reusable(out, record)) is not None:
        if log:
            log(f"adapter {adapter_id}: already trained on the same data, base and hyper-parameters; reused")
        return done[0] | {"seed": seed}, [{**h, "seed": seed} for h in done[1]]
    tok = load_tokenizer(base_path)
    examples = tokenize(tok, sft["prompt"].to_list(), sft["response"].to_list(), cfg.train.max_length)
    if log and len(examples) < cfg.splits.train_examples:
        log(f"{name} x {scope} (seed {seed}): {len(examples)} of {cfg.splits.train_examples} examples after the CAI filter; "
            f"still {steps} steps, as every cell")  # fmt: skip
    result = train(base_path, examples, train_cfg, out, root / f".ckpt-{adapter_id}", log=log or (lambda _: None), pad_id=tok.pad_token_id,
                   steps=steps)  # fmt: skip
    row = {
        "adapter_id": adapter_id, "constitution": name, "scope": scope, "seed": seed,
        "base_model": cfg.student.model, "base_version": base_version, "sft_version": sft_version,
        "hyperparams": json.dumps(hyper, sort_keys=True), "examples": len(examples), "steps": result.steps,
        "train_loss": result.train_loss, "tokens": result.tokens, "seconds": result.seconds,
        "tokens_per_s": result.tokens / max(result.seconds, 1e-9), "device": result.device, "dtype": result.dtype,
        "peak_memory_mb": result.peak_memory_mb, "resumed_from": result.resumed_from, "path": home_relative(out, home),
        "sha256": folder_sha256(out),
    }  # fmt: skip
    steps = [{**h, "adapter_id": adapter_id, "constitution": name, "scope": scope, "seed": seed} for h in result.log]
    tmp = record.with_name(record.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"row": row, "steps": steps}, sort_keys=True), encoding="utf-8")
    os.replace(tmp, record)  # written last: its presence means the adapter is complete
    return row, steps


def loss_chart(log: list[dict], width: int = 40) -> str:
    """The loss curve as a small text chart (one row per step, a bar per loss)."""
    if not log:
        return "_no steps_"
    hi = max(h["loss"] for h in log) or 1.0
    rows = [f"{h['step']:>4} {h['loss']:.3f} {'█' * max(1, round(width * h['loss'] / hi))}" for h in log]
    return "```\n" + "\n".join(rows) + "\n```"
