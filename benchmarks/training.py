"""LoRA training throughput: ealign's loop against TRL's SFTTrainer, same model, data, LoRA config,
batch, learning rate and steps, each in its own process (for peak memory), in one run. Prints
tokens/s, s/step, the trained model's loss on all examples, and peak memory of both, and the ratios.

    python benchmarks/training.py [--steps 20] [--batch-size 4] [--max-length 256] [--dtype float32]

Data: pyrit's human-labelled (request, response) pairs, shipped offline, as prompt/completion chats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _pairs(n: int):
    import csv
    import io

    from ealign_dagster.core.paths import pack_file
    from ealign_dagster.core.schemas import read_text
    from ealign_dagster.judges.registry import REFUSAL_DATA

    rows = []
    for pkg, rel in REFUSAL_DATA:
        body = "\n".join(l for l in read_text(pack_file(pkg, rel)).splitlines() if not l.startswith("#"))
        rows += [(r["objective"], r["assistant_response"]) for r in csv.DictReader(io.StringIO(body))]
    return rows[:n]


def eval_loss(model, examples, pad_id, batch_size=8) -> float:
    """Mean assistant-token loss over every example: one number both trainers are judged by."""
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


def run_ours(args, model_path) -> dict:
    from transformers import AutoTokenizer

    from ealign_dagster.core.config import TrainConfig
    from ealign_dagster.training.lora import tokenize, train

    tok = AutoTokenizer.from_pretrained(model_path)
    pairs = _pairs(args.examples)
    ex = tokenize(tok, [p for p, _ in pairs], [r for _, r in pairs], args.max_length)
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
    out = tempfile.mkdtemp()
    res = train(
        model_path,
        ex,
        cfg,
        __import__("pathlib").Path(out) / "a",
        __import__("pathlib").Path(out) / "c",
        log=lambda m: None,
        pad_id=tok.pad_token_id,
    )
    steady = res.log[2:]  # the first steps include one-time setup
    secs = steady[-1]["seconds"] - res.log[1]["seconds"]
    input_tokens = _input_tokens(ex, args)
    peak = _peak_mb()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path), out + "/a")
    return {
        "s_per_step": secs / len(steady),
        "loss": eval_loss(trained, ex, tok.pad_token_id),
        "tokens_per_s": sum(input_tokens[2:]) / secs,
        "peak_mb": peak,
    }


def _input_tokens(ex, args):
    """Non-pad tokens per optimizer step, in the order both trainers see the data."""
    from ealign_dagster.training.lora import _batches

    out, epoch = [], 0
    while len(out) < args.steps:
        for b in _batches(len(ex), args.batch_size, 0, epoch):
            out.append(sum(len(ex[i][0]) for i in b))
        epoch += 1
    return out[: args.steps]


def run_trl(args, model_path) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from ealign_dagster.training.lora import tokenize

    tok = AutoTokenizer.from_pretrained(model_path)
    pairs = _pairs(args.examples)
    ds = datasets.Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]}
            for p, r in pairs
        ]
    )
    times = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())

    cfg = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=args.max_length,
        packing=False,
        completion_only_loss=True,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=args.dtype == "bfloat16",
        dataloader_drop_last=False,
        gradient_checkpointing=args.gc,  # TRL's default is True; both sides run the same setting
    )
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
    secs = times[-1] - times[1]
    peak = _peak_mb()
    ex = tokenize(tok, [p for p, _ in pairs], [r for _, r in pairs], args.max_length)
    steps_tokens = _input_tokens(ex, args)  # same data volume per step (the samplers differ in order only)
    mean_tokens = sum(steps_tokens) / len(steps_tokens)
    return {
        "s_per_step": secs / (len(times) - 2),
        "loss": eval_loss(trainer.model, ex, tok.pad_token_id),
        "tokens_per_s": mean_tokens * (len(times) - 2) / secs,
        "peak_mb": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--examples", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--gc", action="store_true", help="gradient checkpointing on both sides (TRL's default)")
    ap.add_argument("--only", choices=["ours", "trl"])
    ap.add_argument("--home", default=os.environ.get("EALIGN_HOME") or tempfile.mkdtemp(prefix="ealign-bench-"))
    args = ap.parse_args()
    os.environ["EALIGN_HOME"] = args.home

    from ealign_dagster.core import models
    from ealign_dagster.core.paths import Home

    home = Home.at(args.home)
    if models.is_built(args.model):
        models.build(args.model, home.models)
    path = models.resolve(args.model, home.models)
    if args.only:
        print(json.dumps((run_ours if args.only == "ours" else run_trl)(args, path)))
        return
    results = {}
    for which in ("ours", "trl"):
        cmd = [
            sys.executable,
            __file__,
            "--only",
            which,
            "--home",
            args.home,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--examples",
            str(args.examples),
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(args.max_length),
            "--dtype",
            args.dtype,
        ] + (["--gc"] if args.gc else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{which} failed:\n{out.stderr[-3000:]}")
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[which]
        print(
            f"{which:>4}: {r['tokens_per_s']:.0f} tok/s, {r['s_per_step']:.2f} s/step, loss on all examples after training {r['loss']:.4f}, peak {r['peak_mb']:.0f} MB"
        )
    o, t = results["ours"], results["trl"]
    print(
        f"ratio ours/TRL: {o['tokens_per_s'] / t['tokens_per_s']:.2f}x tokens/s, loss {o['loss'] / t['loss']:.3f}, "
        f"peak memory {o['peak_mb'] / t['peak_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
