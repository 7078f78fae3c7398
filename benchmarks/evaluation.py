"""Evaluating several models on one loaded base: the base and N-1 LoRA adapters answer the same
prompts, greedy, with the adapters switched one at a time (the baseline) or mixed row by row in
shared batches (PEFT adapter_names), in one run. Rounds alternate the modes so that a busy machine
slows each alike; prints tokens/s per mode (best round), the ratio to the baseline, and whether every
mode gave the baseline's answers.

    python benchmarks/evaluation.py [--models 4] [--prompts 16] [--max-new-tokens 32] [--batch-size 16] [--rounds 2]

Adapters: rank 16 on all seven projections (the demo's shape), B drawn at random so each one differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
MODES = ("switch", "mixed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--models", type=int, default=4, help="the base plus this many minus one adapters")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat, Request
    from ealign_dagster.core.config import ModelConfig, SourceConfig
    from ealign_dagster.core.paths import Home
    from ealign_dagster.prompts.sources import read_source

    root = tempfile.mkdtemp(prefix="ealign-bench-")
    home = Home.at(root)
    if models.is_built(args.model):
        models.build(args.model, home.models, log=lambda m: None)
    path = models.resolve(args.model, home.models)
    names = [f"adapter-{i}" for i in range(1, args.models)]
    torch.manual_seed(0)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"])  # fmt: skip
    for name in names:
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(path), lora)
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        peft.save_pretrained(os.path.join(root, name))
    rows = read_source(SourceConfig(name="harmbench", kind="harmbench", role="eval", split="val")).rows
    prompts = [r.text for r in rows if r.functional_category == "standard"][: args.prompts]
    reqs = [Request.chat([{"role": "user", "content": p}], max_new_tokens=args.max_new_tokens, temperature=0.0,
                         adapter=a) for a in [None, *names] for p in prompts]  # fmt: skip
    print(f"model {args.model}, {args.models} models x {len(prompts)} prompts, {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")  # fmt: skip

    chats = {}
    for mode in args.modes:
        chats[mode] = LocalChat(ModelConfig(model=path, batch_size=args.batch_size, adapter_batching=mode), home)
        for name in names:
            chats[mode].attach(name, os.path.join(root, name))
    best, answers, tokens = {}, {}, {}
    for rnd in range(args.rounds):
        for mode in args.modes:
            out = [None] * len(reqs)
            start = time.perf_counter()
            for idx, results in chats[mode].generate_batches(reqs):
                for i, r in zip(idx, results):
                    out[i] = r
            dt = time.perf_counter() - start
            best[mode] = min(best.get(mode, dt), dt)
            answers[mode], tokens[mode] = [r.text for r in out], sum(r.completion_tokens for r in out)
            print(f"round {rnd + 1} {mode}: {dt:.1f}s, {tokens[mode] / dt:.1f} tok/s", flush=True)
    base = args.modes[0]
    for mode in args.modes:
        same = sum(a == b for a, b in zip(answers[mode], answers[base]))
        print(f"{mode}: {tokens[mode] / best[mode]:.1f} tok/s, {best[base] / best[mode]:.2f}x {base}, "
              f"answers identical to {base}: {same}/{len(reqs)}")  # fmt: skip


if __name__ == "__main__":
    main()
