"""SFT datasets: (prompt, selected revision) pairs for the prompts of one scope's training pool."""

from __future__ import annotations

import pandas as pd
import polars as pl

from ealign_dagster.core.config import SftConfig
from ealign_dagster.core.store import data_version

SFT_COLUMNS = [
    "constitution",
    "scope",
    "prompt_id",
    "category",
    "prompt",
    "response",
    "principle_id",
    "n_tokens",
    "response_tokens",
]


def token_counts(tokenizer, prompts: list[str], responses: list[str]) -> tuple[list[int], list[int]]:
    """Tokens of the whole chat example and of the response alone, with the student's template."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
        )
        for p, r in zip(prompts, responses)
    ]
    total = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    resp = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
    return total, resp


def build_sft(
    constitution: str, scope: str, train: pd.DataFrame, revisions: pd.DataFrame, tokenizer, cfg: SftConfig
) -> tuple[pd.DataFrame, dict]:
    """train: prompt_id, category (the scope's training rows); revisions: the constitution's
    cai_revisions rows. Returns the examples and counts of what was left out and why."""
    chosen = revisions[revisions["selected"]].drop_duplicates("prompt_id")
    df = train[["prompt_id", "category"]].merge(
        chosen[["prompt_id", "prompt", "revision", "principle_id"]], on="prompt_id", how="left"
    )
    counts = {"no_accepted_revision": int(df["revision"].isna().sum())}
    df = df.dropna(subset=["revision"]).rename(columns={"revision": "response"})
    dup = df["response"].str.strip().duplicated()  # one teacher reply reused verbatim teaches a template
    counts["duplicate_response"] = int(dup.sum())
    df = df[~dup]
    df["constitution"], df["scope"] = constitution, scope
    df["n_tokens"], df["response_tokens"] = (
        token_counts(tokenizer, df["prompt"].tolist(), df["response"].tolist()) if len(df) else ([], [])
    )
    ok = (df["response_tokens"] >= cfg.min_tokens) & (df["n_tokens"] <= cfg.max_tokens)
    counts["token_length"] = int((~ok).sum())
    return df.loc[ok, SFT_COLUMNS].reset_index(drop=True), counts


def sft_examples(cfg, home, store, name: str, scope: str, versions: dict) -> tuple[pl.DataFrame, dict]:
    """The SFT examples of one constitution x scope with their lineage columns; `versions` holds the
    data versions of the upstream partitions (splits[scope], cai_revisions[name])."""
    from transformers import AutoTokenizer

    from ealign_dagster.core.models import resolve

    train = store.query("SELECT prompt_id, category FROM splits WHERE scope = ? AND role = 'train'", [scope])
    revs = store.table("cai_revisions", "WHERE constitution = ?", [name])
    tok = AutoTokenizer.from_pretrained(resolve(cfg.student.model, home.models))
    df, dropped = build_sft(name, scope, train.to_pandas(), revs.to_pandas(), tok, cfg.sft)
    df = pl.from_pandas(df).with_columns(
        split_version=pl.lit(versions.get(f"splits[{scope}]"), dtype=pl.String),
        cai_version=pl.lit(versions.get(f"cai_revisions[{name}]"), dtype=pl.String),
        constitution_version=pl.lit(revs["constitution_version"][0] if revs.height else "", dtype=pl.String),
    )
    return df.with_columns(sft_version=pl.lit(data_version(df))), dropped
