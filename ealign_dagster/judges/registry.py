"""Judges of a (prompt, response) pair, registered once with their name and version.

A judge is a class with `name`, `measures` ("refusal" or "harm"), `version(ctx)` and
`run(prompts, responses, ctx)`; `@register` adds it to JUDGES. Adding a judge touches one file
(a module in this folder, imported by the package). Every verdict names its judge and version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

THRESHOLD = 0.5  # a score at or above this is a refusal (offline judges)


@dataclass
class Verdicts:
    judge: str
    version: str
    refused: np.ndarray  # bool
    harmful: np.ndarray  # float: 1.0 / 0.0, nan where the judge does not rate harm
    score: np.ndarray  # refusal probability (prefix/embedding) or 1.0 = harmful (llm)
    raw: list[str] | None = None


@dataclass
class JudgeContext:
    """What a judge may need besides the texts: an embedding cache, an endpoint, a log."""

    cache_dir: Path | None = None
    llm: object | None = None  # ModelConfig of an OpenAI-compatible judge endpoint
    home: object | None = None  # Home, for an endpoint's generation cache
    log: Callable[[str], None] | None = None


JUDGES: dict[str, object] = {}


def register(cls):
    """Class decorator: one instance of the judge, under its name."""
    JUDGES[cls.name] = cls()
    return cls


def get(name: str):
    if name not in JUDGES:
        raise ValueError(f"unknown judge '{name}' (known: {', '.join(sorted(JUDGES))})")
    return JUDGES[name]


def run_judge(name: str, prompts: list[str], responses: list[str], ctx: JudgeContext | None = None) -> Verdicts:
    """One judge over paired prompts and responses."""
    return get(name).run(list(prompts), list(responses), ctx or JudgeContext())


def refusal_scores(prompts: list[str], responses: list[str], judge: str, ctx: JudgeContext | None = None) -> np.ndarray:
    """A refusal score in [0, 1] per response (CAI's acceptance filter); judge "none": all equal."""
    if judge == "none":
        return np.zeros(len(responses))
    return run_judge(judge, prompts, responses, ctx).score


JUDGMENT_KEYS = ["model_id", "adapter_id", "constitution", "scope", "benchmark", "role", "prompt_id", "sample",
                 "category", "generation_version"]  # fmt: skip


def judge_rows(generations: pl.DataFrame, judges: list[str], ctx: JudgeContext) -> pl.DataFrame:
    """One row per answer x judge: the verdict, its score and the judge's version."""
    if generations.is_empty():
        raise ValueError("generations is empty: materialize eval_generations first")
    frames = []
    for judge in judges:
        v = run_judge(judge, generations["prompt"].to_list(), generations["response"].to_list(), ctx)
        harmful = [None if h != h else bool(h) for h in v.harmful]  # nan: the judge does not rate harm
        frames.append(generations.select([k for k in JUDGMENT_KEYS if k in generations.columns]).with_columns(
            judge=pl.lit(judge), judge_version=pl.lit(v.version), refused=pl.Series(v.refused.astype(bool)),
            harmful=pl.Series(harmful, dtype=pl.Boolean), score=pl.Series(v.score, dtype=pl.Float64),
            raw=pl.Series(v.raw, dtype=pl.String) if v.raw else pl.lit(None, dtype=pl.String),
        ))  # fmt: skip
    return pl.concat(frames)
