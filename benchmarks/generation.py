"""Local generation throughput: ealign's batched backend against a naive one-prompt-at-a-time loop of
`model.generate`, same model, prompts and max new tokens, in one run. Prints tokens/s and the ratio.

    python benchmarks/generation.py [--prompts 32] [--max-new-tokens 64] [--batch-sizes 8 16] [--dtypes float32 bfloat16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--home", default=os.environ.get("EALIGN_HOME") or tempfile.mkdtemp(prefix="ealign-bench-"))
    args = ap.parse_args()
    os.environ["EALIGN_HOME"] = args.home
    from ealign_dagster.core.paths import Home

    home = Home.at(args.home)

    import torch

    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat, Request
    from ealign_dagster.core.config import ModelConfig, SourceConfig
    from ealign_dagster.prompts.sources import read_source

    if models.is_built(args.model):
        models.build(args.model, home.models)
    rows = read_source(SourceConfig(name="advbench", kind="advbench", limit=args.prompts)).rows
    reqs = [
        Request.chat([{"role": "user", "content": r.text}], max_new_tokens=args.max_new_tokens, temperature=0.0)
        for r in rows
    ]
    print(
        f"model {args.model}, {len(reqs)} prompts, max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}"
    )

    # Baseline: the naive loop, one prompt per generate call, fp32, greedy.
    chat = LocalChat(ModelConfig(model=args.model, dtype="float32", batch_size=1), home)
    tok, model = chat.tokenizer, chat.model
    start, tokens = time.perf_counter(), 0
    for r in reqs:
        ids = tok.apply_chat_template(
            r.as_messages(), add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(chat.device)
        with torch.inference_mode():
            out = model.generate(
                **ids, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        tokens += new.index(tok.eos_token_id) if tok.eos_token_id in new else len(new)
    base = tokens / (time.perf_counter() - start)
    print(f"naive loop (fp32, batch 1): {tokens} tokens, {base:.1f} tok/s")

    # CAI requests share a long prefix (persona + few-shot exemplar): prefilled once vs per row.
    from ealign_dagster.cai.revise import critique_messages
    from ealign_dagster.core.schemas import load_constitutions

    con = load_constitutions()["virtue"]
    cai = [
        Request.chat(
            critique_messages(con, con.principles[i % len(con.principles)], r.text, "Sure, here is how.", 1),
            max_new_tokens=args.max_new_tokens,
            temperature=0.0,
        )
        for i, r in enumerate(rows)
    ]
    rates = {}
    for min_tokens in (0, 32):
        chat = LocalChat(
            ModelConfig(
                model=args.model, dtype="float32", batch_size=max(args.batch_sizes), prefix_cache_min_tokens=min_tokens
            ),
            home,
        )
        chat.state.pop("prefix", None)
        start, tokens = time.perf_counter(), 0
        for _, results in chat.generate_batches(cai):
            tokens += sum(r.completion_tokens for r in results)
        rates[min_tokens] = tokens / (time.perf_counter() - start)
        print(
            f"CAI critiques (few-shot 1, batch {max(args.batch_sizes)}), prefix cache {'on' if min_tokens else 'off'}: {rates[min_tokens]:.1f} tok/s"
        )
    print(f"prefix cache ratio: {rates[32] / rates[0]:.2f}x")

    for dtype in args.dtypes:
        for bs in args.batch_sizes:
            chat = LocalChat(ModelConfig(model=args.model, dtype=dtype, batch_size=bs), home)
            start, tokens = time.perf_counter(), 0
            for _, results in chat.generate_batches(reqs):
                tokens += sum(r.completion_tokens for r in results)
            rate = tokens / (time.perf_counter() - start)
            print(f"ealign batched ({dtype}, batch {bs}): {tokens} tokens, {rate:.1f} tok/s, ratio {rate / base:.2f}x")


if __name__ == "__main__":
    main()
