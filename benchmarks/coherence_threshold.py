"""Where to put eval.incoherent_nll: the mean per-token NLL, under the base model after the bare user
prompt (as the `coherence` asset scores every answer), of the base model's own greedy answers and of
texts that are not language: its answers with their tokens shuffled or their words shuffled, and
uniformly random tokens. Also answers moved to another prompt (fluent but off-topic: coherence is not
relevance, they should pass), the reference answers, and optionally every answer stored in a home's
results.duckdb. Prints percentiles per group and the share each candidate threshold flags.

    python benchmarks/coherence_threshold.py [--home DIR] [--max-new-tokens 32] [--harmful 40]
                                             [--results HOME/results.duckdb] [--thresholds 4 4.5 5 5.5 6]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="offline:smollm2-135m-instruct")
    ap.add_argument("--home", default=None, help="a home whose built model and generation cache to reuse")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--harmful", type=int, default=40, help="HarmBench val prompts answered as well")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--results",
        default=None,
        help="a results.duckdb: its base model's answers stand for the benign and harmful ones generated "
        "here, and a sample of every model kind's answers is scored too",
    )
    ap.add_argument("--per-kind", type=int, default=60, help="stored answers scored per model kind (seeded sample)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0])
    args = ap.parse_args()

    import numpy as np
    import polars as pl
    import yaml

    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat, Request, generate
    from ealign_dagster.core.config import ModelConfig, SourceConfig
    from ealign_dagster.core.paths import Home, assets_dir
    from ealign_dagster.evaluation.coherence import Progress, mean_logprobs, reference_items
    from ealign_dagster.prompts.sources import read_source

    home = Home.at(args.home or tempfile.mkdtemp(prefix="ealign-bench-"))
    if models.is_built(args.model):
        models.build(args.model, home.models, log=print)
    chat = LocalChat(ModelConfig(model=args.model, batch_size=args.batch_size), home)
    tok = chat.tokenizer

    refs, _ = reference_items()
    questions = refs["question"].to_list()
    stored = None
    if args.results:
        import duckdb

        with duckdb.connect(args.results, read_only=True) as con:
            cols = {r[0] for r in con.execute("DESCRIBE generations").fetchall()}
            kind = (
                "model_kind" if "model_kind" in cols else "CASE WHEN adapter_id IS NULL THEN 'base' ELSE 'adapter' END"
            )
            stored = con.execute(f"SELECT model_id, {kind} AS model_kind, prompt, response FROM generations").pl()
    else:
        benign = yaml.safe_load((assets_dir() / "benign" / "lookalikes.yaml").read_text())["prompts"]
        harmful = read_source(SourceConfig(name="harmbench", kind="harmbench", role="eval", split="val")).rows
        questions += [b["text"] for b in benign] + [r.text for r in harmful if r.functional_category == "standard"][
            : args.harmful
        ]
    reqs = [Request.chat([{"role": "user", "content": q}], max_new_tokens=args.max_new_tokens, temperature=0.0,
                         top_p=1.0) for q in questions]  # fmt: skip
    answers = [r.text for r in generate(chat, reqs, log=print, what="greedy answers")]
    if stored is not None:  # the demo's own greedy answers to its evaluation prompts
        own = stored.filter(pl.col("model_id") == "base")
        questions, answers = questions + own["prompt"].to_list(), answers + own["response"].to_list()

    rng = random.Random(0)
    special = set(tok.all_special_ids)
    vocab = [i for i in range(len(tok)) if i not in special]

    def shuffled_tokens(text: str) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rng.shuffle(ids)
        return tok.decode(ids)

    def shuffled_words(text: str) -> str:
        words = text.split()
        rng.shuffle(words)
        return " ".join(words)

    def random_tokens(text: str) -> str:
        return tok.decode(rng.sample(vocab, max(1, len(tok(text, add_special_tokens=False)["input_ids"]))))

    n_ref = refs.height
    groups = {
        "own greedy answers": (questions, answers),
        "reference answers": (questions[:n_ref], refs["answer"].to_list()),
        "answers to another prompt": (questions, answers[1:] + answers[:1]),
        "own answers, words shuffled": (questions, [shuffled_words(a) for a in answers]),
        "own answers, tokens shuffled": (questions, [shuffled_tokens(a) for a in answers]),
        "random tokens": (questions, [random_tokens(a) for a in answers]),
    }
    scores = {}
    start = time.perf_counter()
    for name, (qs, texts) in groups.items():
        prompts = [[{"role": "user", "content": q}] for q in qs]
        progress = Progress(name, len(texts), 0, print, every_s=60)
        got = mean_logprobs(chat, prompts, texts, None, args.batch_size, progress)
        scores[name] = np.array([-v for n, v in got if n])
    if stored is not None:
        stored = stored.filter(pl.col("model_id") != "base").sample(fraction=1.0, shuffle=True, seed=0)
        stored = stored.group_by("model_kind", maintain_order=True).head(args.per_kind)
        pairs = stored.unique(["prompt", "response"])
        got = mean_logprobs(chat, [[{"role": "user", "content": p}] for p in pairs["prompt"]],
                            pairs["response"].to_list(), None, args.batch_size,
                            Progress("stored answers", pairs.height, 0, print, every_s=60))  # fmt: skip
        nll = pairs.with_columns(nll=pl.Series([-v if n else None for n, v in got], dtype=pl.Float64))
        stored = stored.join(nll.select("prompt", "response", "nll"), on=["prompt", "response"], how="left")
        for kind in sorted(set(stored["model_kind"].drop_nulls())):
            v = stored.filter(pl.col("model_kind") == kind)["nll"].drop_nulls().to_numpy()
            scores[f"stored answers: {kind}"] = v
    print(f"\nscored in {time.perf_counter() - start:.0f}s; {args.model}, {args.max_new_tokens} new tokens, "
          f"mean per-token NLL (nats) under the base after the user prompt\n")  # fmt: skip
    head = f"{'group':34} {'n':>4} {'mean':>6} {'min':>6} {'p5':>6} {'p50':>6} {'p95':>6} {'max':>6}"
    print(head + "".join(f" {f'>{t:g}':>6}" for t in args.thresholds))
    for name, v in scores.items():
        q = np.percentile(v, [5, 50, 95])
        print(f"{name:34} {len(v):4d} {v.mean():6.2f} {v.min():6.2f} {q[0]:6.2f} {q[1]:6.2f} {q[2]:6.2f} "
              f"{v.max():6.2f}" + "".join(f" {np.mean(v > t):6.1%}" for t in args.thresholds))  # fmt: skip


if __name__ == "__main__":
    main()
