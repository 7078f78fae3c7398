"""Coherence next to safety: how well each model under test still speaks, so that a broken model is not
read as a safe one (the emergent-misalignment convention of reporting coherence beside alignment).

Two measures, both teacher-forced on local weights:
- capability: the mean per-token log-likelihood of short reference answers to benign everyday questions
  (assets/coherence/reference_answers.yaml), under each model as it is evaluated (its adapter applied,
  a prompted model's persona as the system prompt), with a bootstrap CI over items and the paired
  change vs the base;
- per answer: the mean per-token negative log-likelihood of every generated response under the BASE
  model (the user prompt, then the response), flagged `incoherent` above eval.incoherent_nll or when
  the response is empty. One fixed scorer for every model, so flags compare across models.

Scores already in the tables under the same key (scorer weights + adapter checksum, chat, text) are
reused, so a re-run scores only what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
import polars as pl
import pydantic

from ealign_dagster.core.config import Profile
from ealign_dagster.core.paths import Home, assets_dir, file_version
from ealign_dagster.core.schemas import _validate, read_yaml, unique_ids
from ealign_dagster.evaluation.models import COLUMN_TYPES, ModelUnderTest, attach

REFERENCE_FILE = "coherence/reference_answers.yaml"
ROLES = {"eval": "harmful", "benign": "benign"}  # generations.role -> the coherence table's column suffix


class ReferenceItem(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str = pydantic.Field(min_length=1)
    topic: str = pydantic.Field(min_length=1)
    question: str = pydantic.Field(min_length=1)
    answer: str = pydantic.Field(min_length=1)


class ReferenceFile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    version: int
    items: list[ReferenceItem] = pydantic.Field(min_length=2)  # a bootstrap over items needs more than one

    @pydantic.field_validator("items")
    @classmethod
    def _unique_ids(cls, v: list[ReferenceItem]) -> list[ReferenceItem]:
        return unique_ids(v, "ids")


def reference_items() -> tuple[pl.DataFrame, str]:
    """The reference questions and answers (item_id, topic, question, answer) and the file's version."""
    path = assets_dir() / REFERENCE_FILE
    data = _validate(ReferenceFile, read_yaml(path), path)
    df = pl.DataFrame([i.model_dump() for i in data.items]).rename({"id": "item_id"})
    return df, file_version(path)


def score_key(*parts) -> str:
    """What a score depends on: the scorer's weights (+ adapter checksum), the chat and the text."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class Progress:
    """A line at most every `every_s` seconds over a whole scoring job: rows, tokens/s, ETA."""

    def __init__(self, what: str, rows: int, tokens: int, log=None, every_s: float = 10.0):
        self.what, self.rows, self.tokens, self.log, self.every_s = what, rows, tokens, log, every_s
        self.done_rows = self.done_tokens = 0
        self.start = self.said = time.perf_counter()

    def step(self, rows: int, tokens: int) -> None:
        self.done_rows += rows
        self.done_tokens += tokens
        now = time.perf_counter()
        if self.log and (now - self.said >= self.every_s or self.done_rows >= self.rows):
            self.said = now
            rate = self.done_tokens / max(now - self.start, 1e-9)
            eta = max(self.tokens - self.done_tokens, 0) / max(rate, 1e-9)
            self.log(f"{self.what}: {self.done_rows}/{self.rows} rows, {rate:.0f} tok/s, ETA {eta:.0f}s")


def chat_tokens(chat, messages: list[dict]) -> int:
    head = chat.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(chat.tokenizer(head, add_special_tokens=False)["input_ids"])


def text_tokens(chat, text: str) -> int:
    """A completion's tokens as LocalScoring.logprobs counts them."""
    return len(chat.tokenizer(text, add_special_tokens=False)["input_ids"])


def mean_logprobs(
    chat, prompts: list[list[dict]], completions: list[str], adapter: str | None = None, batch_size: int = 16,
    progress: Progress | None = None,
) -> list[tuple[int, float]]:  # fmt: skip
    """(tokens, mean per-token log-probability) of each completion after its chat prompt, teacher-forced
    (LocalScoring.logprobs' sum over the completion's tokens, divided by their number); (0, nan) for an
    empty completion. Rows run in length-sorted batches so that little of a batch is padding."""
    n_tail = [text_tokens(chat, c) for c in completions]
    out: list[tuple[int, float]] = [(0, math.nan)] * len(prompts)
    todo = [i for i in range(len(prompts)) if n_tail[i]]
    width = {i: chat_tokens(chat, prompts[i]) + n_tail[i] for i in todo}
    todo.sort(key=lambda i: width[i])
    for b in range(0, len(todo), batch_size):
        rows = todo[b : b + batch_size]
        sums = chat.logprobs([prompts[i] for i in rows], [completions[i] for i in rows], len(rows), adapter)
        for i, s in zip(rows, sums):
            out[i] = (n_tail[i], s / n_tail[i])
        if progress:
            progress.step(len(rows), sum(width[i] for i in rows))
    return out


def scoring_chat(cfg: Profile, home: Home):
    """(the local model that scores, None) or (None, why not): the evaluation model where it is local;
    behind an endpoint, the local student it serves (the adapter canary checks the endpoint's adapters
    against the student's); else nothing, and the coherence rows say why."""
    from ealign_dagster.core.chat import load_chat

    model = cfg.eval.model or cfg.student
    if model.backend == "local":
        return load_chat(model, home), None
    if cfg.student.backend == "local":
        return load_chat(cfg.student, home), None
    return None, (
        f"no local weights: the evaluation model '{model.model}' is served by an endpoint and the student "
        f"'{cfg.student.model}' is not local, so nothing here can be teacher-forced"
    )


def _reused(previous: pl.DataFrame | None, keys: list[str], value: pl.Expr) -> dict[str, tuple[int, float]]:
    """{score_key: (tokens, mean log-probability)} of earlier scored rows under these keys."""
    if previous is None or previous.is_empty():
        return {}
    hit = previous.filter(pl.col("score_key").is_in(keys) & (pl.col("n_tokens") > 0)).unique("score_key")
    return {k: (n, v) for k, n, v in hit.select("score_key", "n_tokens", value).iter_rows()}


def reference_scores(
    chat, models: list[ModelUnderTest], items: pl.DataFrame, batch_size: int, previous: pl.DataFrame | None = None,
    log=None,
) -> pl.DataFrame:  # fmt: skip
    """One row per model x reference item: the answer's tokens and mean per-token log-likelihood after the
    question as the model is asked it (ModelUnderTest.messages), with its adapter applied. `previous`:
    earlier rows (score_key, n_tokens, loglik_per_token) to reuse."""
    plan = []
    for mut in models:
        attach(chat, mut)
        msgs = [mut.messages(q) for q in items["question"]]
        keys = [score_key(mut.key_version(chat), m, a) for m, a in zip(msgs, items["answer"])]
        plan.append((mut, msgs, keys))
    done = _reused(previous, [k for _, _, keys in plan for k in keys], pl.col("loglik_per_token"))
    todo_rows = sum(k not in done for _, _, keys in plan for k in keys)
    todo_tokens = sum(
        chat_tokens(chat, m) + text_tokens(chat, a)
        for _, msgs, keys in plan for m, a, k in zip(msgs, items["answer"], keys) if k not in done
    )  # fmt: skip
    if log:
        log(f"reference answers: {len(plan) * items.height - todo_rows} scores reused, scoring {todo_rows}")
    progress = Progress(f"reference answers of {len(models)} models", todo_rows, todo_tokens, log)
    frames = []
    for mut, msgs, keys in plan:
        todo = [j for j, k in enumerate(keys) if k not in done]
        if todo:
            answers = items["answer"].to_list()
            got = mean_logprobs(chat, [msgs[j] for j in todo], [answers[j] for j in todo], mut.name, batch_size,
                                progress)  # fmt: skip
            done.update({keys[j]: g for j, g in zip(todo, got)})
        frames.append(
            pl.DataFrame({
                "model_id": [mut.model_id] * items.height, "item_id": items["item_id"],
                "n_tokens": [done[k][0] for k in keys], "loglik_per_token": [done[k][1] for k in keys],
                "score_key": keys,
            }, schema={"model_id": pl.String, "item_id": pl.String, "n_tokens": pl.Int64,
                       "loglik_per_token": pl.Float64, "score_key": pl.String})
        )  # fmt: skip
    return pl.concat(frames)


def generation_scores(
    chat, gens: pl.DataFrame, threshold: float, batch_size: int, previous: pl.DataFrame | None = None, log=None
) -> pl.DataFrame:
    """Per generation: the response's mean per-token NLL under the base model after the bare user prompt
    (the same scorer for every model, persona or not), and `incoherent`: empty or NLL above `threshold`.
    Identical (prompt, response) pairs are scored once."""
    chat.activate(None)
    version = chat.version
    pairs = gens.select("prompt", "response").unique(maintain_order=True)
    keys = [score_key(version, p, r) for p, r in pairs.iter_rows()]
    done = _reused(previous, keys, -pl.col("nll_per_token"))
    todo = [j for j, k in enumerate(keys) if k not in done]
    prompts = [[{"role": "user", "content": pairs["prompt"][j]}] for j in todo]
    responses = [pairs["response"][j] if pairs["response"][j].strip() else "" for j in todo]  # blank: not scored
    blank = sum(not r for r in responses)
    if log:
        log(f"answers: {len(gens)} rows, {len(keys)} distinct, {len(keys) - len(todo)} scores reused, "
            f"{blank} blank, scoring {len(todo) - blank}")  # fmt: skip
    tokens = sum(chat_tokens(chat, p) + text_tokens(chat, r) for p, r in zip(prompts, responses) if r)
    progress = Progress("answers under the base model", len(todo) - blank, tokens, log)
    got = mean_logprobs(chat, prompts, responses, None, batch_size, progress)
    done.update({keys[j]: g for j, g in zip(todo, got)})
    scored = pairs.with_columns(
        score_key=pl.Series(keys, dtype=pl.String),
        n_tokens=pl.Series([done[k][0] for k in keys], dtype=pl.Int64),
        nll_per_token=pl.Series([-done[k][1] for k in keys], dtype=pl.Float64).fill_nan(None),
    )
    out = gens.join(scored, on=["prompt", "response"], how="left", nulls_equal=True)
    empty = pl.col("response").str.strip_chars().str.len_chars() == 0
    return out.select(
        "model_id", "model_kind", "benchmark", "role", "prompt_id", *(["sample"] if "sample" in out.columns else []),
        "category", "n_tokens", "nll_per_token",
        incoherent=empty | (pl.col("nll_per_token") > threshold).fill_null(True),
        empty=empty, scorer_version=pl.lit(version, dtype=pl.String), score_key="score_key",
        generation_version="generation_version",
    )  # fmt: skip


def coherence_rows(
    models: list[ModelUnderTest], refs: pl.DataFrame | None, gen: pl.DataFrame | None, n_resamples: int, seed: int,
    reason: str | None = None, scorer_version: str | None = None,
) -> pl.DataFrame:  # fmt: skip
    """One row per model under test: the mean per-token log-likelihood of the reference answers with its
    percentile-bootstrap 95% CI over items, the paired change vs base (bootstrap over the same items),
    and the share of its generations flagged incoherent (overall, harmful prompts, benign prompts; Wilson
    CI overall). Without local weights (refs and gen None) the measures are NULL and `reason` says why."""
    from ealign_dagster.core.stats import bootstrap_ci, mean_diff

    base = None
    if refs is not None:
        wide = refs.pivot(on="model_id", index="item_id", values="loglik_per_token").sort("item_id")
        base = wide["base"].to_numpy() if "base" in wide.columns else None
    rows = []
    for mut in models:
        row = {**mut.columns(), "n_items": None, "ref_loglik": None, "ci_low": None, "ci_high": None,
               "change_vs_base": None, "change_ci_low": None, "change_ci_high": None}  # fmt: skip
        if refs is not None:
            x = wide[mut.model_id].to_numpy()
            lo, hi = bootstrap_ci([x], np.mean, n_resamples, seed)
            row.update(n_items=len(x), ref_loglik=float(np.mean(x)), ci_low=lo, ci_high=hi)
            if base is not None and mut.model_id != "base":
                clo, chi = bootstrap_ci([x, base], mean_diff, n_resamples, seed, paired=True)
                row.update(change_vs_base=float(np.mean(x - base)), change_ci_low=clo, change_ci_high=chi)
        row.update(_incoherence(gen.filter(pl.col("model_id") == mut.model_id) if gen is not None else None))
        rows.append({**row, "reason": reason, "scorer_version": scorer_version})
    schema = {c: getattr(pl, t) for c, t in COLUMN_TYPES.items()} | {
        "n_items": pl.Int64, "ref_loglik": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
        "change_vs_base": pl.Float64, "change_ci_low": pl.Float64, "change_ci_high": pl.Float64,
        "n_generations": pl.Int64, "n_incoherent": pl.Int64, "n_empty": pl.Int64, "incoherent_rate": pl.Float64,
        "incoherent_ci_low": pl.Float64, "incoherent_ci_high": pl.Float64, "incoherent_rate_harmful": pl.Float64,
        "incoherent_rate_benign": pl.Float64, "mean_nll": pl.Float64, "reason": pl.String,
        "scorer_version": pl.String,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def _incoherence(g: pl.DataFrame | None) -> dict:
    from ealign_dagster.core.stats import wilson

    if g is None or g.is_empty():
        return dict.fromkeys(("n_generations", "n_incoherent", "n_empty", "incoherent_rate", "incoherent_ci_low",
                              "incoherent_ci_high", "incoherent_rate_harmful", "incoherent_rate_benign", "mean_nll"))  # fmt: skip
    k, n = int(g["incoherent"].sum()), g.height
    lo, hi = wilson(k, n)
    by_role = {}
    for role, suffix in ROLES.items():
        r = g.filter(pl.col("role") == role)["incoherent"]
        by_role[f"incoherent_rate_{suffix}"] = float(r.mean()) if len(r) else None
    return dict(n_generations=n, n_incoherent=k, n_empty=int(g["empty"].sum()), incoherent_rate=k / n,
                incoherent_ci_low=lo, incoherent_ci_high=hi, **by_role, mean_nll=g["nll_per_token"].mean())  # fmt: skip


def coherence_tables(
    cfg: Profile, home: Home, gens: pl.DataFrame, models: list[ModelUnderTest], previous: dict, log=None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The `coherence` (per model), `generation_coherence` (per answer) and `coherence_items` (per model x
    reference item) tables. `previous`: those tables' earlier rows by name (or None), whose scores are reused.
    Without local weights the measures are NULL (an empty answer is still incoherent) and `reason` says why."""
    items, reference_version = reference_items()
    items = items.head(cfg.eval.coherence_items or items.height)
    chat, reason = scoring_chat(cfg, home)
    threshold = cfg.eval.incoherent_nll
    if chat is None:
        empty = pl.col("response").str.strip_chars().str.len_chars() == 0
        gen = gens.select(
            "model_id", "model_kind", "benchmark", "role", "prompt_id", *(["sample"] if "sample" in gens.columns else []),
            "category",
            n_tokens=pl.lit(None, pl.Int64), nll_per_token=pl.lit(None, pl.Float64),
            incoherent=pl.when(empty).then(True).otherwise(None), empty=empty, scorer_version=pl.lit(None, pl.String),
            score_key=pl.lit(None, pl.String), generation_version="generation_version",
        )  # fmt: skip
        refs = pl.DataFrame(schema={"model_id": pl.String, "item_id": pl.String, "n_tokens": pl.Int64,
                                    "loglik_per_token": pl.Float64, "score_key": pl.String})  # fmt: skip
        summary = coherence_rows(models, None, None, cfg.eval.bootstrap_resamples, cfg.eval.seed, reason)
        version = None
    else:
        batch = chat.cfg.batch_size
        gen = generation_scores(chat, gens, threshold, batch, previous.get("generation_coherence"), log)
        refs = reference_scores(chat, models, items, batch, previous.get("coherence_items"), log)
        version = chat.version
        summary = coherence_rows(models, refs, gen, cfg.eval.bootstrap_resamples, cfg.eval.seed, None, version)
    per_model = gens.group_by("model_id").agg(pl.col("generation_version", "eval_version").first())
    summary = summary.with_columns(reference_version=pl.lit(reference_version), incoherent_nll=pl.lit(threshold))
    summary = summary.join(per_model, on="model_id", how="left")
    refs = refs.join(items.select("item_id", "topic"), on="item_id", how="left").with_columns(
        scorer_version=pl.lit(version, pl.String), reference_version=pl.lit(reference_version)
    )
    return summary, gen, refs
