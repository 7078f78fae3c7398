"""Greedy answers of every model under test to the evaluation set: one loaded base, adapters
attached and switched, every answer cached under base version + adapter checksum."""

from __future__ import annotations

import polars as pl

from ealign_dagster.core.chat import Request, generate, load_chat
from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import Home, stable_int
from ealign_dagster.core.store import data_version
from ealign_dagster.evaluation.models import COLUMN_TYPES, ModelUnderTest, attach


def eval_chat(cfg: Profile, home: Home):
    """The chat model that serves the base and the adapters (the student unless eval.model is set)."""
    return load_chat(cfg.eval.model or cfg.student, home)


class AdapterNotApplied(RuntimeError):
    """An adapter that answers like the base model, or is served other than it was trained."""


def canaries(cfg: Profile, home: Home, chat, models: list[ModelUnderTest], log=None) -> pl.DataFrame:
    """The adapter canary for every adapter (evaluation.canary): fails naming each adapter that is not
    applied or, behind an endpoint, differs from the local PEFT adapter; else the canary table."""
    from ealign_dagster.evaluation.canary import canary_table, check_adapters

    served = cfg.eval.model is not None and cfg.eval.model.backend == "openai"
    local = load_chat(cfg.student, home) if served and cfg.student.backend == "local" else None
    results = check_adapters(chat, models, local, cfg.eval.canary_tolerance, log)
    failed = [r.message() for r in results if r.failed]
    if failed:
        raise AdapterNotApplied("; ".join(failed))
    return canary_table(results)


def generations(
    cfg: Profile, home: Home, items: pl.DataFrame, models: list[ModelUnderTest], log=None
) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """One row per model x evaluation prompt (response, token counts, a per-model `generation_version`),
    how many answers were generated rather than read from the cache, and the adapter canary table
    (checked before anything is generated)."""
    chat = eval_chat(cfg, home)
    canary = canaries(cfg, home, chat, models, log)
    s, k_samples = cfg.eval.sampling, cfg.eval.samples
    items = pl.concat([items.with_columns(sample=pl.lit(k, pl.Int64)) for k in range(k_samples)])
    # sample 0 keeps the seed of a one-sample run (its cached answers stay valid); sample k > 0 its own
    seeds = [stable_int(cfg.eval.seed, pid, *([k] if k else [])) for pid, k in zip(items["prompt_id"], items["sample"])]
    reqs, versions = [], []
    for mut in models:  # every model's requests in one call: the chat batches them (adapter_batching)
        attach(chat, mut)
        reqs += [
            Request.chat(mut.messages(p), max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                         top_p=s.top_p, seed=seed, adapter=mut.name)
            for p, seed in zip(items["prompt"], seeds)
        ]  # fmt: skip
        versions += [mut.key_version(chat)] * items.height
    out = generate(chat, reqs, log=log, what=f"evaluation of {len(models)} models", key_version=versions)
    frames = []
    for k, mut in enumerate(models):
        mine = out[k * items.height : (k + 1) * items.height]
        rows = items.with_columns(
            *(pl.lit(v, dtype=getattr(pl, COLUMN_TYPES[c])).alias(c) for c, v in mut.columns().items()),
            response=pl.Series([r.text for r in mine], dtype=pl.String),
            prompt_tokens=pl.Series([r.prompt_tokens for r in mine], dtype=pl.Int64),
            completion_tokens=pl.Series([r.completion_tokens for r in mine], dtype=pl.Int64),
            model_version=pl.lit(mut.served_version(chat)),
            adapter_sha256=pl.lit(mut.sha256, dtype=pl.String),
        )
        frames.append(rows.with_columns(generation_version=pl.lit(data_version(rows.drop("prompt_tokens")))))
    return pl.concat(frames, how="vertical"), sum(not r.cached for r in out), canary
