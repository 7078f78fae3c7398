"""SFT datasets: (prompt, selected revision) pairs for the prompts of one scope's training pool."""

from __future__ import annotations

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
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.strip() strips


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
    constitution: str, scope: str, train: pl.DataFrame, revisions: pl.DataFrame, tokenizer, cfg: SftConfig
) -> tuple[pl.DataFrame, dict]:
    """train: prompt_id, category (the scope's training rows); revisions: the constitution's
    cai_revisions rows. Returns the examples and counts of what was left out and why."""
    chosen = revisions.filter(pl.col("selected")).unique("prompt_id", keep="first")
    df = train.select("prompt_id", "category").join(
        chosen.select("prompt_id", "prompt", "revision", "principle_id"),
        on="prompt_id",
        how="left",
        maintain_order="left",
    )
    counts = {"no_accepted_revision": df["revision"].null_count()}
    df = df.drop_nulls("revision").rename({"revision": "response"})
    # one teacher reply reused verbatim teaches a template
    dup = ~pl.col("response").str.strip_chars(WHITESPACE).is_first_distinct()
    counts["duplicate_response"] = df.select(dup.sum()).item()
    df = df.filter(~dup).with_columns(constitution=pl.lit(constitution), scope=pl.lit(scope))
    total, resp = token_counts(tokenizer, df["prompt"].to_list(), df["response"].to_list())
    df = df.with_columns(n_tokens=pl.Series(total, dtype=pl.Int64), response_tokens=pl.Series(resp, dtype=pl.Int64))
    ok = (pl.col("response_tokens") >= cfg.min_tokens) & (pl.col("n_tokens") <= cfg.max_tokens)
    counts["token_length"] = df.select((~ok).sum()).item()
    return df.filter(ok).select(SFT_COLUMNS), counts


def sft_examples(cfg, home, store, name: str, scope: str, versions: dict) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """The SFT examples of one constitution x scope, per replicate seed, with their lineage columns, the
    counts of what was left out, and the held-out screening of a narrow scope's responses
    (`leakage_responses`); `versions` holds the data versions of the upstream partitions
    (splits[scope], cai_revisions[name]). `sft_version` is per replicate, so adding a seed leaves the
    other replicates' adapters as they are."""
    from ealign_dagster.core.models import load_tokenizer, resolve
    from ealign_dagster.splits.leakage import screen_responses

    train = store.query("SELECT prompt_id, category FROM splits WHERE scope = ? AND role = 'train'", [scope])
    revs = store.table("cai_revisions", "WHERE constitution = ?", [name])
    tok = load_tokenizer(resolve(cfg.student.model, home.models))
    frames, dropped, screened = [], {}, []
    for seed in cfg.study.seeds:
        mine = revs.filter(pl.col("seed") == seed)
        df, counts = build_sft(name, scope, train, mine, tok, cfg.sft)
        df, screen, leaked = screen_responses(df, scope, store, cfg, home.cache, seed)  # held-out content
        screened.append(screen)
        dropped = {k: dropped.get(k, 0) + v for k, v in (counts | leaked).items()}
        df = df.with_columns(
            seed=pl.lit(seed, dtype=pl.Int64),
            split_version=pl.lit(versions.get(f"splits[{scope}]"), dtype=pl.String),
            cai_version=pl.lit(versions.get(f"cai_revisions[{name}]"), dtype=pl.String),
            constitution_version=pl.lit(mine["constitution_version"][0] if mine.height else "", dtype=pl.String),
        )
        frames.append(df.with_columns(sft_version=pl.lit(data_version(df))))
    return pl.concat(frames, how="vertical"), dropped, pl.concat(screened, how="vertical")
