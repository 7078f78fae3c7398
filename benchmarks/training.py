"""LoRA training throughput: ealign's loop against TRL's SFTTrainer, at TRL's defaults and at the
fastest TRL settings found, same model, data, LoRA config, batch, learning rate, steps and precision,
each in its own process (for peak memory), in one run. Prints tokens/s, s/step, the trained model's
loss on all examples and peak memory of every run, then the ratios ours/TRL-defaults and
ours/TRL-best (the fastest TRL variant whose loss is within --loss-tolerance of TRL-defaults').

    python benchmarks/training.py [--steps 20] [--batch-size 4] [--max-length 256] [--dtype float32]
        [--variants defaults no_gc padding_free packing]

TRL variants (installed TRL >= 1.x; every variant keeps the precision of --dtype, the loss on
completion tokens only, and TRL's fused chunked LM head, which is what `loss_type="nll"` does since
`"chunked_nll"` became its alias):
- defaults: TRL's own settings otherwise (gradient checkpointing on, padded batches);
- no_gc: gradient checkpointing off (ours never uses it unless --gc);
- padding_free: no_gc + `padding_free=True` (one flattened row per batch, block-diagonal attention);
- packing: no_gc + `packing=True, packing_strategy="bfd"` (padding-free), one packed row per step as
  long as one of our batches on average, so every step sees about the same tokens as ours.
`use_liger_kernel` and Hub kernels need Triton/CUDA and a download; --variants accepts `liger` where
liger-kernel is installed. Data: pyrit's human-labelled (request, response) pairs, shipped offline,
tokenized once with the chat template and cut to --max-length: every trainer gets the same token ids
and the same loss mask (the reply and its end-of-turn token). Tokens/s counts non-pad input tokens
after the first steps; tokens per CPU-second is printed too, steadier when the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WARMUP_STEPS = 2  # the first steps include one-time setup; timing starts after them
# SFTConfig overrides per TRL variant, on top of the settings every run shares (see run_trl).
VARIANTS = {
    "defaults": {},
    "no_gc": {"gradient_checkpointing": False},
    "padding_free": {"gradient_checkpointing": False, "padding_free": True},
    "packing": {"gradient_checkpointing": False, "packing": True, "packing_strategy": "bfd"},
    "liger": {"gradient_checkpointing": False, "use_liger_kernel": True},
}


def _pairs(n: int):
    from ealign_dagster.judges.embedding import refusal_examples

    df = refusal_examples().head(n)
    return list(zip(df["prompt"].to_list(), df["response"].to_list()))


def _examples(tok, args):
    from ealign_dagster.training.lora import tokenize

    pairs = _pairs(args.examples)
    return pairs, tokenize(tok, [p for p, _ in pairs], [r for _, r in pairs], args.max_length)


def eval_loss(model, examples, pad_id, batch_size=8) -> float:
    """Mean assistant-token loss over every example: one number all trainers are judged by."""
    import torch

    from ealign_dagster.training.lora import _collate, assistant_loss

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(examples), batch_size):
            ids, attn, mask = _collate(examples, list(range(b, min(b + batch_size, len(examples)))), pad_id, "cpu")
            loss, n = assistant_loss(model, ids, attn, mask)
            total, count = total + loss.item() * n, count + n
    return total / count


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _input_tokens(ex, args):
    """Non-pad tokens per optimizer step of ours, in the order it sees the data."""
    from ealign_dagster.training.lora import micro_batches

    return [sum(len(ex[i][0]) for i in b) for b in micro_batches(len(ex), args.batch_size, 0, args.steps)]


def run_ours(args, model_path) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ealign_dagster.core.config import TrainConfig
    from ealign_dagster.training.lora import train

    tok = AutoTokenizer.from_pretrained(model_path)
    _, ex = _examples(tok, args)
    cfg = TrainConfig(
        rank=16,
        alpha=32,
        dropout=0.0,
        target_modules=TARGETS,
        learning_rate=2e-4,
        scheduler="constant",
        warmup_ratio=0.0,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        checkpoint_every=0,
        dtype=args.dtype,
        gradient_checkpointing=args.gc,
    )
    out = Path(tempfile.mkdtemp())
    cpu = []  # process CPU seconds at the end of every step (train logs once per step)
    res = train(model_path, ex, cfg, out / "a", out / "c", log=lambda m: cpu.append(time.process_time()),
                pad_id=tok.pad_token_id)  # fmt: skip
    steady = res.log[WARMUP_STEPS:]
    secs = steady[-1]["seconds"] - res.log[WARMUP_STEPS - 1]["seconds"]
    tokens = sum(_input_tokens(ex, args)[WARMUP_STEPS:])
    peak = _peak_mb()
    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path), str(out / "a"))
    return {
        "s_per_step": secs / len(steady),
        "loss": eval_loss(trained, ex, tok.pad_token_id),
        "tokens_per_s": tokens / secs,
        "tokens_per_cpu_s": tokens / (cpu[-1] - cpu[WARMUP_STEPS - 1]),
        "peak_mb": peak,
        "settings": "lean loop: logits at assistant tokens only, dynamic padding",
    }


def run_trl(args, model_path, variant: str) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    _, ex = _examples(tok, args)
    # The very token ids and loss masks ours trains on (TRL takes tokenized rows as they are).
    ds = datasets.Dataset.from_list(
        [{"input_ids": ids, "completion_mask": [0] * n + [1] * (len(ids) - n)} for ids, n in ex]
    )
    overrides = dict(VARIANTS[variant])
    batch_size, max_length = args.batch_size, args.max_length
    if overrides.get("padding_free") and not overrides.get("packing"):
        max_length = None  # TRL refuses max_length without packing; the rows are cut to it already
    if overrides.get("packing"):
        # One packed row per step holding as many tokens as one of our batches on average.
        steps_tokens = _input_tokens(ex, args)
        batch_size, max_length = 1, max(args.max_length, round(sum(steps_tokens) / len(steps_tokens)))
    times, cpu = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())
            cpu.append(time.process_time())

    shared = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=max_length,
        completion_only_loss=True,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=args.dtype == "bfloat16",  # TRL's own default is bf16; every run here uses --dtype
        dataloader_drop_last=False,
    )
    cfg = SFTConfig(**{**shared, **overrides})
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, args.dtype))
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[Clock()],
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"),
    )
    trainer.train()
    # TRL counts the non-pad input tokens of every step it trains on (cumulative `num_tokens` in the log).
    seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h and "loss" in h]
    secs = times[-1] - times[WARMUP_STEPS - 1]
    tokens = seen[-1] - seen[WARMUP_STEPS - 1]
    peak = _peak_mb()
    knobs = {k: getattr(cfg, k) for k in ("gradient_checkpointing", "padding_free", "packing", "loss_type")}
    return {
        "s_per_step": secs / (len(times) - WARMUP_STEPS),
        "loss": eval_loss(trainer.model, ex, tok.pad_token_id),
        "tokens_per_s": tokens / secs,
        "tokens_per_cpu_s": tokens / (cpu[-1] - cpu[WARMUP_STEPS - 1]),
        "peak_mb": peak,
        "settings": ", ".join(f"{k}={v}" for k, v in knobs.items())
        + (f", packing_strategy={cfg.packing_strategy}, batch 1 x {max_length}" if cfg.packing else ""),
    }


def _line(name: str, r: dict) -> str:
    return (
        f"{name:>17}: {r['tokens_per_s']:6.0f} tok/s ({r['tokens_per_cpu_s']:.0f} per CPU-s), {r['s_per_step']:.2f} s/step, loss on all examples after "
        f"training {r['loss']:.4f}, peak {r['peak_mb']:.0f} MB  [{r['settings']}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--examples", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--gc", action="store_true", help="gradient checkpointing for ours (TRL-defaults has it on)")
    ap.add_argument("--variants", nargs="+", default=["defaults", "no_gc", "padding_free", "packing"])
    ap.add_argument("--loss-tolerance", type=float, default=0.02, help="relative loss gap still counted as equal")
    ap.add_argument("--only", help="internal: run one trainer ('ours' or 'trl:<variant>') and print JSON")
    ap.add_argument("--home", default=os.environ.get("EALIGN_HOME") or tempfile.mkdtemp(prefix="ealign-bench-"))
    args = ap.parse_args()
    os.environ["EALIGN_HOME"] = args.home
    if "defaults" not in args.variants:
        ap.error("--variants must include 'defaults' (the reference for ratios and equal loss)")

    from ealign_dagster.core import models
    from ealign_dagster.core.paths import Home

    home = Home.at(args.home)
    if models.is_built(args.model):
        models.build(args.model, home.models)
    path = models.resolve(args.model, home.models)
    if args.only:
        which, _, variant = args.only.partition(":")
        print(json.dumps(run_ours(args, path) if which == "ours" else run_trl(args, path, variant)))
        return

    import torch
    import trl
    from transformers import AutoTokenizer

    _, ex = _examples(AutoTokenizer.from_pretrained(path), args)
    longest = max(len(e[0]) for e in ex)
    variants = list(args.variants)
    print(
        f"TRL {trl.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, {len(ex)} examples "
        f"(longest {longest} tokens), {args.steps} steps of batch {args.batch_size}, {args.dtype}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results = {}
    for which in ["ours"] + [f"trl:{v}" for v in variants]:
        cmd = [sys.executable, __file__, "--only", which, "--home", args.home, "--model", args.model]
        for flag in ("steps", "examples", "batch_size", "max_length", "dtype"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        out = subprocess.run(cmd + (["--gc"] if args.gc else []), capture_output=True, text=True)
        if out.returncode != 0:
            if which == "ours" or which == "trl:defaults":
                sys.exit(f"{which} failed:\n{out.stderr[-3000:]}")
            print(f"{which} failed, left out: {out.stderr.strip().splitlines()[-1]}")
            continue
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        print(_line(which, results[which]), flush=True)

    o, d = results["ours"], results["trl:defaults"]
    equal = {k: r for k, r in results.items() if k != "ours" and abs(r["loss"] / d["loss"] - 1) <= args.loss_tolerance}
    best_name = max(equal, key=lambda k: equal[k]["tokens_per_s"])
    b = equal[best_name]
    print(f"load average at the end {os.getloadavg()[0]:.1f}; TRL-best = {best_name} (fastest within loss tolerance)")
    for label, t in (("TRL-defaults", d), (f"TRL-best ({best_name})", b)):
        print(
            f"ratio ours/{label}: {o['tokens_per_s'] / t['tokens_per_s']:.2f}x tokens/s "
            f"({o['tokens_per_cpu_s'] / t['tokens_per_cpu_s']:.2f}x per CPU-second), "
            f"loss {o['loss'] / t['loss']:.3f}, peak memory {o['peak_mb'] / t['peak_mb']:.2f}"
        )
    if b["tokens_per_s"] >= o["tokens_per_s"] and b["loss"] <= o["loss"] * (1 + args.loss_tolerance):
        print(f"TRL at {best_name} matches or beats the lean loop on tokens/s at equal loss")


if __name__ == "__main__":
    main()
