"""Great Expectations 1.x suites, run on pandas frames; one result per named check."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ealign_dagster.config import SplitsConfig
from ealign_dagster.inputs import Taxonomy

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

SPLIT_CHECKS = {
    "ids_unique_and_present": "prompt ids are non-null, unique within each role, and in `prompts`",
    "categories_in_taxonomy": "every category is one of the taxonomy's",
    "narrow_scope_only_its_category": "training rows are only the scope's own categories",
    "no_held_out_leakage": "no training prompt is a held-out-category prompt or too similar to one",
    "no_train_eval_overlap": "no training prompt is, or nearly duplicates, an evaluation prompt",
    "min_rows_per_category": "every trained and evaluated category has enough rows",
    "prompt_length_bounds": "every prompt's length is within the profile's bounds",
}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    failing: list[dict]  # offending rows (ids and values), at most 50
    unexpected_count: int
    expectations: list[str]


def _context():
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # progress bars are cosmetic
        pass
    return ctx


def validate_frames(frames: dict[str, tuple[pd.DataFrame, list, str]], check_names: list[str]) -> dict[str, CheckOutcome]:
    """Validate each frame with its expectations (each tagged meta.check) and fold the results
    into one outcome per check name. frames: name -> (df, expectations, index column)."""
    import great_expectations as gx

    ctx = _context()
    source = ctx.data_sources.add_pandas("ealign")
    outcomes = {n: CheckOutcome(n, True, [], 0, []) for n in check_names}
    for name, (df, expectations, index_col) in frames.items():
        batch_def = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"ealign_{name}", expectations=expectations))
        result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [index_col]}
        )
        for r in result.results:
            cfg = r.expectation_config
            o = outcomes[cfg.meta["check"]]
            o.expectations.append(f"{cfg.type}({cfg.kwargs.get('column') or cfg.kwargs.get('column_list')})")
            if not r.success:
                o.passed = False
                o.unexpected_count += int(r.result.get("unexpected_count") or 0)
                rows = r.result.get("unexpected_index_list") or r.result.get("partial_unexpected_list") or []
                o.failing.extend(_plain(x) for x in rows[: 50 - len(o.failing)])
    return outcomes


def _plain(x):
    if isinstance(x, dict):
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in x.items()}
    return x.item() if hasattr(x, "item") else x


def split_frames(
    scope: str, rows: pd.DataFrame, held_sim: np.ndarray, held_p: np.ndarray, eval_sim: np.ndarray,
    taxonomy: Taxonomy, cfg: SplitsConfig,
) -> dict:
    """The frames and expectations behind SPLIT_CHECKS for one scope.

    rows: the scope's split rows joined with prompt text; held_sim / eval_sim: similarities of each
    row to the held-out-category prompts and to the evaluation prompts, held_p: the held-out
    classifier's probability; all recomputed by the caller from the written rows.
    """
    import great_expectations as gx

    E = gx.expectations
    spec = taxonomy.scopes[scope]
    df = rows.copy()
    train = (df["role"] == "train").to_numpy()
    df["train_category"] = df["category"].where(train)
    df["train_prompt_id"] = df["prompt_id"].where(train)
    df["train_held_out_similarity"] = np.where(train, held_sim, np.nan)
    df["train_held_out_probability"] = np.where(train, held_p, np.nan)
    df["train_eval_similarity"] = np.where(train, eval_sim, np.nan)
    eval_ids = sorted(df.loc[~train, "prompt_id"])
    row_expectations = [
        E.ExpectColumnValuesToNotBeNull(column="prompt_id", meta={"check": "ids_unique_and_present"}),
        E.ExpectCompoundColumnsToBeUnique(column_list=["role", "prompt_id"], meta={"check": "ids_unique_and_present"}),
        # a split row whose prompt is gone from `prompts` has no text
        E.ExpectColumnValuesToNotBeNull(column="text", meta={"check": "ids_unique_and_present"}),
        E.ExpectColumnValuesToBeInSet(column="category", value_set=list(taxonomy.categories), meta={"check": "categories_in_taxonomy"}),
        E.ExpectColumnValuesToBeInSet(column="train_category", value_set=list(spec.categories), meta={"check": "narrow_scope_only_its_category"}),
        E.ExpectColumnValuesToBeBetween(
            column="train_held_out_similarity", max_value=cfg.leakage_threshold, strict_max=True,
            meta={"check": "no_held_out_leakage"},
        ),
        E.ExpectColumnValuesToBeBetween(
            column="train_held_out_probability", max_value=cfg.leakage_probability, strict_max=True,
            meta={"check": "no_held_out_leakage"},
        ),
        E.ExpectColumnValuesToNotBeInSet(column="train_prompt_id", value_set=eval_ids, meta={"check": "no_train_eval_overlap"}),
        E.ExpectColumnValuesToBeBetween(
            column="train_eval_similarity", max_value=cfg.contamination_threshold, strict_max=True,
            meta={"check": "no_train_eval_overlap"},
        ),
        E.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=cfg.min_chars, max_value=cfg.max_chars, meta={"check": "prompt_length_bounds"},
        ),
    ]
    if spec.held_out:
        row_expectations.append(
            E.ExpectColumnValuesToNotBeInSet(column="train_category", value_set=[spec.held_out], meta={"check": "no_held_out_leakage"})
        )
    expected = [("train", c) for c in spec.categories] + [("eval", c) for c in taxonomy.categories]
    counts = df.groupby(["role", "category"]).size()
    count_df = pd.DataFrame(
        [{"role_category": f"{r}:{c}", "n": int(counts.get((r, c), 0))} for r, c in expected]
    )
    count_expectations = [
        E.ExpectColumnValuesToBeBetween(column="n", min_value=cfg.min_rows_per_category, meta={"check": "min_rows_per_category"})
    ]
    return {
        "rows": (df, row_expectations, "prompt_id"),
        "counts": (count_df, count_expectations, "role_category"),
    }


SFT_CHECKS = {
    "sft_not_empty": "the partition has at least one example",
    "sft_no_eval_prompt": "no evaluation prompt is used for training",
    "sft_responses_nonempty_unique": "responses are non-empty and not duplicated",
    "sft_token_length_bounds": "every example fits the token bounds",
}


def sft_frames(rows: pd.DataFrame, eval_ids: list[str], min_tokens: int, max_tokens: int) -> dict:
    """The frames and expectations behind SFT_CHECKS for one constitution x scope."""
    import great_expectations as gx

    E = gx.expectations
    df = rows.copy()
    df["response_stripped"] = df["response"].fillna("").str.strip()
    expectations = [
        E.ExpectTableRowCountToBeBetween(min_value=1, meta={"check": "sft_not_empty"}),
        E.ExpectColumnValuesToNotBeInSet(column="prompt_id", value_set=eval_ids, meta={"check": "sft_no_eval_prompt"}),
        E.ExpectColumnValueLengthsToBeBetween(column="response_stripped", min_value=1, meta={"check": "sft_responses_nonempty_unique"}),
        E.ExpectColumnValuesToBeUnique(column="response_stripped", meta={"check": "sft_responses_nonempty_unique"}),
        E.ExpectColumnValuesToBeUnique(column="prompt_id", meta={"check": "sft_responses_nonempty_unique"}),
        E.ExpectColumnValuesToBeBetween(column="response_tokens", min_value=min_tokens, meta={"check": "sft_token_length_bounds"}),
        E.ExpectColumnValuesToBeBetween(column="n_tokens", max_value=max_tokens, meta={"check": "sft_token_length_bounds"}),
    ]
    return {"sft": (df, expectations, "prompt_id")}
