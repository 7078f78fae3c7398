"""Likert option scoring on the persona items: ealign's `option_logprobs` (one prefill per batch with
only the last position's logits, options continued from its cache) against a baseline forward that
computes the logits of every position, same model, prompts and batch size, in one run. Both read the
same numbers (checked); prints items/s and the ratio.

    python benchmarks/persona_options.py [--model offline:smollm2-135m-instruct] [--batch-size 16] [--repeat 2]
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
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat
    from ealign_dagster.core.config import ModelConfig
    from ealign_dagster.core.paths import Home
    from ealign_dagster.core.schemas import load_item_bank
    from ealign_dagster.persona.items import LIKERT, likert_messages

    home = Home.at(tempfile.mkdtemp(prefix="ealign-bench-"))
    if models.is_built(args.model):
        models.build(args.model, home.models)
    chat = LocalChat(ModelConfig(model=args.model, dtype="float32", batch_size=args.batch_size), home)
    prompts = [likert_messages(it.text) for it in load_item_bank().items]
    tok, model = chat.tokenizer, chat.model
    ids = [tok(o, add_special_tokens=False)["input_ids"][0] for o in LIKERT]  # one token each on this tokenizer

    def baseline() -> np.ndarray:  # every position's logits, then the last one read
        out = []
        for b in range(0, len(prompts), args.batch_size):
            seqs = [tok(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False),
                        add_special_tokens=False)["input_ids"] for p in prompts[b : b + args.batch_size]]  # fmt: skip
            width = max(map(len, seqs))
            x = torch.tensor([[tok.pad_token_id] * (width - len(s)) + s for s in seqs])
            m = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
            with torch.inference_mode():
                logits = model(input_ids=x, attention_mask=m, position_ids=(m.cumsum(-1) - 1).clamp(min=0)).logits
            out.append(torch.log_softmax(logits[:, -1].float(), -1)[:, ids].numpy())
        return np.concatenate(out)

    def timed(fn):
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeat):
            result = fn()
        return result, (time.perf_counter() - start) / args.repeat

    ref, t_base = timed(baseline)
    got, t_ealign = timed(lambda: chat.option_logprobs(prompts, LIKERT, batch_size=args.batch_size))
    assert np.allclose(ref, got, atol=1e-3), float(np.abs(ref - got).max())
    n = len(prompts)
    print(f"model {args.model}, {n} items, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"baseline (all positions' logits): {n / t_base:7.1f} items/s")
    print(f"ealign option_logprobs:           {n / t_ealign:7.1f} items/s")
    print(f"ratio: {t_base / t_ealign:.2f}x")


if __name__ == "__main__":
    main()
