"""Great Expectations 1.x suites, run on pandas frames (GX has no polars backend); one result per named check."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


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


def validate_frames(
    frames: dict[str, tuple[pd.DataFrame, list, str]], check_names: list[str]
) -> dict[str, CheckOutcome]:
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
