"""SFT datasets: (prompt, selected revision) pairs for the prompts of one scope's training pool."""

from __future__ import annotations

import pandas as pd

from ealign_dagster.config import SftConfig

SFT_COLUMNS = ["constitution", "scope", "prompt_id", "category", "prompt", "response", "principle_id",
               "n_tokens", "response_tokens"]


def token_counts(tokenizer, prompts: list[str], responses: list[str]) -> tuple[list[int], list[int]]:
    """Tokens of the whole chat example and of the response alone, with the student's template."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False) for p, r in zip(prompts, responses)]
    total = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    resp = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
    return total, resp


def build_sft(constitution: str, scope: str, train: pd.DataFrame, revisions: pd.DataFrame, tokenizer, cfg: SftConfig) -> tuple[pd.DataFrame, dict]:
    """train: prompt_id, category (the scope's training rows); revisions: the constitution's
    cai_revisions rows. Returns the examples and counts of what was left out and why."""
    chosen = revisions[revisions["selected"]].drop_duplicates("prompt_id")
    df = train[["prompt_id", "category"]].merge(chosen[["prompt_id", "prompt", "revision", "principle_id"]], on="prompt_id", how="left")
    counts = {"no_accepted_revision": int(df["revision"].isna().sum())}
    df = df.dropna(subset=["revision"]).rename(columns={"revision": "response"})
    dup = df["response"].str.strip().duplicated()  # one teacher reply reused verbatim teaches a template
    counts["duplicate_response"] = int(dup.sum())
    df = df[~dup]
    df["constitution"], df["scope"] = constitution, scope
    df["n_tokens"], df["response_tokens"] = token_counts(tokenizer, df["prompt"].tolist(), df["response"].tolist()) if len(df) else ([], [])
    ok = (df["response_tokens"] >= cfg.min_tokens) & (df["n_tokens"] <= cfg.max_tokens)
    counts["token_length"] = int((~ok).sum())
    return df.loc[ok, SFT_COLUMNS].reset_index(drop=True), counts
