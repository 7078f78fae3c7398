"""Constitutional critique -> revision chains, and the filter that decides which revisions are kept."""

from __future__ import annotations

import difflib
import random

import pandas as pd

from ealign_dagster.chat import Request, generate
from ealign_dagster.config import CaiConfig, SamplingConfig
from ealign_dagster.inputs import Constitution, Principle
from ealign_dagster.judges import refusal_scores
from ealign_dagster.paths import stable_int


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


def revision_messages(con: Constitution, p: Principle, prompt: str, answer: str, critique: str, few_shot: int) -> list[dict]:
    return critique_messages(con, p, prompt, answer, few_shot) + [
        {"role": "assistant", "content": critique},
        {"role": "user", "content": p.revision},
    ]


def sampled_request(messages: list[dict], s: SamplingConfig, seed: int) -> Request:
    """A chat request with a profile's sampling settings."""
    return Request.chat(messages, max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=seed)


def reject_reason(initial: str, revision: str, cfg: CaiConfig, safety_initial: float, safety_revision: float) -> str | None:
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


def run_cai(chat, con: Constitution, items: pd.DataFrame, cfg: CaiConfig, log=None) -> pd.DataFrame:
    """All candidates and rounds for one constitution. items: prompt_id, prompt, initial.

    Returns one row per (prompt, candidate, round); `accepted` is the filter's verdict on that
    round's revision, `selected` marks the one revision per prompt that becomes SFT data (the
    accepted final-round candidate the judge rates safest)."""
    rows = []
    answers = {(pid, c): init for pid, init in zip(items.prompt_id, items.initial) for c in range(cfg.candidates)}
    prompts = dict(zip(items.prompt_id, items.prompt))
    initial = dict(zip(items.prompt_id, items.initial))
    keys = list(answers)
    for r in range(cfg.rounds):
        principles = {k: sample_principle(con, cfg.seed, k[0], k[1], r) for k in keys}
        seeds = {k: stable_int(cfg.seed, con.name, k[0], k[1], r) for k in keys}
        crit_reqs = [sampled_request(critique_messages(con, principles[k], prompts[k[0]], answers[k], cfg.few_shot), cfg.critique, seeds[k]) for k in keys]
        crits = generate(chat, crit_reqs, log=log, what=f"{con.name} critiques (round {r + 1})")
        rev_reqs = [
            sampled_request(revision_messages(con, principles[k], prompts[k[0]], answers[k], c.text, cfg.few_shot), cfg.revision, seeds[k])
            for k, c in zip(keys, crits)
        ]
        revs = generate(chat, rev_reqs, log=log, what=f"{con.name} revisions (round {r + 1})")
        for k, c, v in zip(keys, crits, revs):
            rows.append({
                "constitution": con.name, "prompt_id": k[0], "candidate": k[1], "round": r,
                "principle_id": principles[k].id, "prompt": prompts[k[0]], "initial": initial[k[0]],
                "critique": c.text, "revision": v.text,
                "critique_tokens": c.completion_tokens, "revision_tokens": v.completion_tokens,
                "prompt_tokens": c.prompt_tokens + v.prompt_tokens,
            })
            answers[k] = v.text or answers[k]
    df = pd.DataFrame(rows)
    safety = refusal_scores(df["prompt"].tolist() + [prompts[k] for k in initial],
                            df["revision"].tolist() + list(initial.values()), cfg.judge)
    df["judge"] = cfg.judge
    df["safety_revision"] = safety[: len(df)]
    init_safety = dict(zip(initial, safety[len(df) :]))
    df["safety_initial"] = df["prompt_id"].map(init_safety)
    df["reject_reason"] = [
        reject_reason(i, v, cfg, si, sv)
        for i, v, si, sv in zip(df["initial"], df["revision"], df["safety_initial"], df["safety_revision"])
    ]
    df["accepted"] = df["reject_reason"].isna()
    final = df[(df["round"] == cfg.rounds - 1) & df["accepted"]]
    best = final.sort_values(["safety_revision", "candidate"], ascending=[False, True]).drop_duplicates("prompt_id")
    df["selected"] = df.index.isin(best.index)
    return df
