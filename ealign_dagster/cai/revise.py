"""Constitutional critique -> revision chains, and the filter that decides which revisions are kept."""

from __future__ import annotations

import difflib
import random

import polars as pl

from ealign_dagster.core.chat import Request, generate
from ealign_dagster.core.config import CaiConfig, SamplingConfig
from ealign_dagster.core.paths import stable_int
from ealign_dagster.core.schemas import INITIAL_ANSWERS, Constitution, Principle
from ealign_dagster.core.store import data_version as store_version
from ealign_dagster.judges.registry import refusal_scores


def sample_principle(con: Constitution, seed: int, prompt_id: str, candidate: int, round_: int) -> Principle:
    """One principle per (prompt, candidate, round), from a seeded RNG: stable across runs."""
    return random.Random(f"{seed}:{con.name}:{prompt_id}:{candidate}:{round_}").choice(con.principles)


def _few_shot(con: Constitution, n: int) -> list[dict]:
    msgs = []
    for ex, principle in zip(con.few_shot[:n], con.principles):
        msgs += [
            {"role": "user", "content": ex.prompt},
            {"role": "assistant", "content": ex.initial},
            {"role": "user", "content": principle.critique},
            {"role": "assistant", "content": ex.critique},
            {"role": "user", "content": principle.revision},
            {"role": "assistant", "content": ex.revision},
        ]
    return msgs


def critique_messages(con: Constitution, p: Principle, prompt: str, answer: str, few_shot: int) -> list[dict]:
    return [
        {"role": "system", "content": con.persona},
        *_few_shot(con, few_shot),
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": p.critique},
    ]


def revision_messages(
    con: Constitution, p: Principle, prompt: str, answer: str, critique: str, few_shot: int
) -> list[dict]:
    return critique_messages(con, p, prompt, answer, few_shot) + [
        {"role": "assistant", "content": critique},
        {"role": "user", "content": p.revision},
    ]


def sampled_request(messages: list[dict], s: SamplingConfig, seed: int) -> Request:
    """A chat request with a profile's sampling settings."""
    return Request.chat(messages, max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=seed)


def reject_reason(
    initial: str, revision: str, cfg: CaiConfig, safety_initial: float, safety_revision: float
) -> str | None:
    """Why a revision is not kept, or None if it is."""
    if not revision.strip():
        return "empty"
    if difflib.SequenceMatcher(None, initial.strip(), revision.strip()).ratio() >= cfg.max_copy_similarity:
        return "copy_of_initial"
    if not cfg.min_chars <= len(revision) <= cfg.max_chars:
        return "length"
    if safety_revision < safety_initial:
        return "less_safe_than_initial"
    return None


REVISION_SCHEMA = {
    "constitution": pl.String,
    "prompt_id": pl.String,
    "candidate": pl.Int64,
    "round": pl.Int64,
    "principle_id": pl.String,
    "prompt": pl.String,
    "initial": pl.String,
    "critique": pl.String,
    "revision": pl.String,
    "critique_tokens": pl.Int64,
    "revision_tokens": pl.Int64,
    "prompt_tokens": pl.Int64,
}
REJECT_INPUTS = ["initial", "revision", "safety_initial", "safety_revision"]


def run_cai(chat, con: Constitution, items: pl.DataFrame, cfg: CaiConfig, judge_ctx=None, log=None) -> pl.DataFrame:
    """All candidates and rounds for one constitution. items: prompt_id, prompt, initial.

    Returns one row per (prompt, candidate, round); `accepted` is the filter's verdict on that
    round's revision, `selected` marks the one revision per prompt that becomes SFT data (the
    accepted final-round candidate the judge rates safest)."""
    rows = []
    ids, texts, inits = items["prompt_id"].to_list(), items["prompt"].to_list(), items["initial"].to_list()
    answers = {(pid, c): init for pid, init in zip(ids, inits) for c in range(cfg.candidates)}
    prompts, initial = dict(zip(ids, texts)), dict(zip(ids, inits))
    keys = list(answers)
    for r in range(cfg.rounds):
        principles = {k: sample_principle(con, cfg.seed, k[0], k[1], r) for k in keys}
        seeds = {k: stable_int(cfg.seed, con.name, k[0], k[1], r) for k in keys}
        crit_reqs = [
            sampled_request(
                critique_messages(con, principles[k], prompts[k[0]], answers[k], cfg.few_shot), cfg.critique, seeds[k]
            )
            for k in keys
        ]
        crits = generate(chat, crit_reqs, log=log, what=f"{con.name} critiques (round {r + 1})")
        rev_reqs = [
            sampled_request(
                revision_messages(con, principles[k], prompts[k[0]], answers[k], c.text, cfg.few_shot),
                cfg.revision,
                seeds[k],
            )
            for k, c in zip(keys, crits)
        ]
        revs = generate(chat, rev_reqs, log=log, what=f"{con.name} revisions (round {r + 1})")
        for k, c, v in zip(keys, crits, revs):
            rows.append(
                {
                    "constitution": con.name,
                    "prompt_id": k[0],
                    "candidate": k[1],
                    "round": r,
                    "principle_id": principles[k].id,
                    "prompt": prompts[k[0]],
                    "initial": initial[k[0]],
                    "critique": c.text,
                    "revision": v.text,
                    "critique_tokens": c.completion_tokens,
                    "revision_tokens": v.completion_tokens,
                    "prompt_tokens": c.prompt_tokens + v.prompt_tokens,
                }
            )
            answers[k] = v.text or answers[k]
    df = pl.DataFrame(rows, schema=REVISION_SCHEMA)
    safety = refusal_scores(
        df["prompt"].to_list() + [prompts[k] for k in initial],
        df["revision"].to_list() + list(initial.values()),
        cfg.judge,
        judge_ctx,
    )
    init_safety = dict(zip(initial, safety[df.height :].tolist()))
    df = df.with_columns(
        judge=pl.lit(cfg.judge, dtype=pl.String),
        safety_revision=pl.Series(safety[: df.height], dtype=pl.Float64),
        safety_initial=pl.col("prompt_id").replace_strict(init_safety, return_dtype=pl.Float64),
    )
    reasons = [reject_reason(i, v, cfg, si, sv) for i, v, si, sv in df.select(REJECT_INPUTS).iter_rows()]
    df = df.with_columns(
        pl.col("safety_revision", "safety_initial").fill_nan(None),  # a judge's NaN is stored as NULL
        reject_reason=pl.Series(reasons, dtype=pl.String),
        accepted=pl.Series([r is None for r in reasons], dtype=pl.Boolean),
    ).with_row_index("row")
    # per prompt, the accepted final-round candidate rated safest (unscored last; ties: lowest candidate)
    best = (
        df.filter((pl.col("round") == cfg.rounds - 1) & pl.col("accepted"))
        .sort("safety_revision", "candidate", descending=[True, False], nulls_last=True)
        .unique("prompt_id", keep="first")["row"]
    )
    return df.with_columns(selected=pl.col("row").is_in(best.to_list())).drop("row")


def initial_answers(cfg, home, items: pl.DataFrame, log=None) -> pl.DataFrame:
    """The helpful-only student's answer to each prompt (items: prompt_id, prompt), with a `cached` flag."""
    from ealign_dagster.core.chat import load_chat

    chat = load_chat(cfg.student, home)
    reqs = [sampled_request([{"role": "user", "content": t}], cfg.cai.initial, cfg.cai.seed) for t in items["prompt"]]
    out = generate(chat, reqs, log=log, what="initial responses")
    return items.with_columns(
        response=pl.Series([r.text for r in out], dtype=pl.String),
        model_id=pl.lit(cfg.student.model),
        model_version=pl.lit(chat.version),
        prompt_tokens=pl.Series([r.prompt_tokens for r in out], dtype=pl.Int64),
        completion_tokens=pl.Series([r.completion_tokens for r in out], dtype=pl.Int64),
        cached=pl.Series([r.cached for r in out], dtype=pl.Boolean),
    )


def initial_answer_rows(items: pl.DataFrame, cfg: CaiConfig) -> pl.DataFrame:
    """The initial-answer control arm's rows: each initial answer stands as its own 'revision' (no
    critique, no judge); kept unless it is empty or outside the length bounds, as a revision would be."""
    reasons = [None if (a or "").strip() and cfg.min_chars <= len(a) <= cfg.max_chars else
               ("empty" if not (a or "").strip() else "length") for a in items["initial"]]  # fmt: skip
    ok = pl.Series([r is None for r in reasons], dtype=pl.Boolean)
    return pl.DataFrame(
        {"constitution": INITIAL_ANSWERS, "prompt_id": items["prompt_id"], "candidate": 0, "round": 0,
         "principle_id": "initial_answer", "prompt": items["prompt"], "initial": items["initial"], "critique": None,
         "revision": items["initial"], "critique_tokens": 0, "revision_tokens": 0, "prompt_tokens": 0, "judge": None,
         "safety_revision": None, "safety_initial": None, "reject_reason": pl.Series(reasons, dtype=pl.String),
         "accepted": ok, "selected": ok},
        schema_overrides=REVISION_SCHEMA | {"judge": pl.String, "safety_revision": pl.Float64,
                                            "safety_initial": pl.Float64},
    )  # fmt: skip


def revisions(cfg, home, name: str, items: pl.DataFrame, judge_ctx=None, log=None) -> tuple[pl.DataFrame, object, dict]:
    """One arm's CAI rows for the initial answers (items: prompt_id, prompt, initial), once per
    replicate seed (study.seeds: replicate s samples with cai.seed + s), the arm's file, and a summary
    (acceptance rates, reject reasons, generated tokens). The initial-answer control arm revises
    nothing: its rows are the initial answers themselves, the same for every replicate."""
    from ealign_dagster.core.chat import load_chat
    from ealign_dagster.core.paths import file_version
    from ealign_dagster.core.schemas import arm_path, load_arm

    path = arm_path(name)
    frames = []
    if name == INITIAL_ANSWERS:
        rows = initial_answer_rows(items, cfg.cai)
        version = store_version(items)
        frames = [rows.with_columns(seed=pl.lit(s), teacher_id=pl.lit(cfg.student.model), teacher_version=pl.lit(""),
                                    constitution_version=pl.lit(version)) for s in cfg.study.seeds]  # fmt: skip
    else:
        con = load_arm(name)
        chat = load_chat(cfg.teacher, home)
        for s in cfg.study.seeds:
            replicate = cfg.cai.model_copy(update={"seed": cfg.cai.seed + s})
            frames.append(run_cai(chat, con, items, replicate, judge_ctx, log=log).with_columns(
                seed=pl.lit(s), teacher_id=pl.lit(cfg.teacher.model, dtype=pl.String),
                teacher_version=pl.lit(chat.version, dtype=pl.String),
                constitution_version=pl.lit(file_version(path), dtype=pl.String),
            ))  # fmt: skip
    df = pl.concat(frames, how="vertical_relaxed").with_columns(pl.col("seed").cast(pl.Int64))
    final = df.filter(pl.col("round") == cfg.cai.rounds - 1) if name != INITIAL_ANSWERS else df
    chosen = df.group_by("seed", "prompt_id").agg(pl.col("selected").any())
    rate = float(chosen["selected"].mean()) if df.height else 0.0
    if log:
        log(f"{name}: {rate:.0%} of prompts have an accepted revision ({len(cfg.study.seeds)} replicate seeds)")
    summary = {
        "acceptance_rate": rate,
        "candidate_acceptance_rate": float(final["accepted"].mean()) if final.height else 0.0,
        "reject_reasons": dict(final["reject_reason"].fill_null("accepted").value_counts(sort=True).iter_rows()),
        "generated_tokens": int(df["critique_tokens"].sum() + df["revision_tokens"].sum()),
        "seeds": ", ".join(map(str, cfg.study.seeds)),
    }
    return df, path, summary
