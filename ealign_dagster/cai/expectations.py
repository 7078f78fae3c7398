"""The Great Expectations suite behind the blocking checks on each SFT dataset partition."""

from __future__ import annotations

import pandas as pd

SFT_CHECKS = {
    "sft_not_empty": "the partition has at least one example",
    "sft_no_eval_prompt": "no evaluation prompt is used for training",
    "sft_responses_nonempty_unique": "responses are non-empty and not duplicated (within a replicate seed)",
    "sft_token_length_bounds": "every example fits the token bounds",
}


def sft_frames(rows: pd.DataFrame, eval_ids: list[str], min_tokens: int, max_tokens: int) -> dict:
    """The frames and expectations behind SFT_CHECKS for one constitution x scope."""
    import great_expectations as gx

    E = gx.expectations
    df = rows.copy()
    df["response_stripped"] = df["response"].fillna("").str.strip()
    # unique within a replicate: the initial-answer control trains every seed on the same answers
    replicate = df["seed"].astype(str) + "\x1f" if "seed" in df else ""
    df["replicate_response"], df["replicate_prompt"] = replicate + df["response_stripped"], replicate + df["prompt_id"]
    expectations = [
        E.ExpectTableRowCountToBeBetween(min_value=1, meta={"check": "sft_not_empty"}),
        E.ExpectColumnValuesToNotBeInSet(column="prompt_id", value_set=eval_ids, meta={"check": "sft_no_eval_prompt"}),
        E.ExpectColumnValueLengthsToBeBetween(
            column="response_stripped", min_value=1, meta={"check": "sft_responses_nonempty_unique"}
        ),
        E.ExpectColumnValuesToBeUnique(column="replicate_response", meta={"check": "sft_responses_nonempty_unique"}),
        E.ExpectColumnValuesToBeUnique(column="replicate_prompt", meta={"check": "sft_responses_nonempty_unique"}),
        E.ExpectColumnValuesToBeBetween(
            column="response_tokens", min_value=min_tokens, meta={"check": "sft_token_length_bounds"}
        ),
        E.ExpectColumnValuesToBeBetween(
            column="n_tokens", max_value=max_tokens, meta={"check": "sft_token_length_bounds"}
        ),
    ]
    return {"sft": (df, expectations, "prompt_id")}


def check_sft(store, constitution: str, scope: str, cfg) -> dict:
    """Validate one constitution x scope's SFT examples as the store holds them: {check: outcome}."""
    from ealign_dagster.core.expectations import validate_frames

    rows = store.query(
        "SELECT seed, prompt_id, response, n_tokens, response_tokens FROM sft_examples WHERE constitution = ? AND scope = ?",
        [constitution, scope],
    ).to_pandas()
    eval_ids = store.query("SELECT DISTINCT prompt_id FROM splits WHERE role = 'eval'")["prompt_id"].to_list()
    return validate_frames(sft_frames(rows, eval_ids, cfg.min_tokens, cfg.max_tokens), list(SFT_CHECKS))
