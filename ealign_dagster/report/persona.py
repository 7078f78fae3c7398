"""The report's persona tables: projectability with whether it can be read (and why not), and the
instrument's diagnostics and reliability."""

from __future__ import annotations

import textwrap

import polars as pl

PROJECTABILITY = ["method", "constitution", "scope", "signature", "signature_change", "change_ci_low", "change_ci_high",
                  "profile_fit", "interpretable", "not_interpretable_reason"]  # fmt: skip
DIAGNOSTICS = ["model_id", "persona", "method", "option_mass_mean", "low_mass", "acquiescence", "scale_order_gap",
               "plain_reverse_r", "interpretable", "not_interpretable_reason"]  # fmt: skip
RELIABILITY = ["population", "method", "subscale", "n_complete", "n_items", "alpha", "split_half_r"]
DIAGNOSTICS_TITLE = (
    "Persona instrument per run (option mass on the answers 1-5, flagged under 0.5; acquiescence = mean "
    "agreement before keying, -1..1; scale-order gap = agreement asked 5 = agree minus asked 1 = agree; "
    "plain vs reverse-scored r over subscales)"
)
RELIABILITY_TITLE = (
    "Persona reliability per subscale (Cronbach's alpha across respondents: the models under test, or the base "
    "model unprompted and as each known persona; split-half r of plain vs reverse-scored items)"
)


def _present(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return df.select(c for c in columns if c in df.columns)


def projectability_table(df: pl.DataFrame) -> pl.DataFrame:
    """Adapters only, by method, largest change first; `interpretable` and, when false, why."""
    if df.is_empty():
        return df
    return _present(df.filter(pl.col("model_id") != "base"), PROJECTABILITY).sort(
        "method", "signature_change", descending=[False, True], nulls_last=True, maintain_order=True
    )


def title_note(df: pl.DataFrame) -> str:
    """For the projectability plot's title: a new line saying how many rows cannot be read and why."""
    if "interpretable" not in df.columns or df["interpretable"].fill_null(False).all():
        return ""
    bad = df.filter(~pl.col("interpretable").fill_null(False))
    reasons = " | ".join(sorted(set(bad["not_interpretable_reason"].drop_nulls())))
    return "\n" + textwrap.fill(f"NOT INTERPRETABLE ({bad.height} of {df.height} rows): {reasons}", 90, max_lines=4)


def diagnostics_table(df: pl.DataFrame) -> pl.DataFrame:
    return _present(df, DIAGNOSTICS).sort("method", "persona", "model_id") if not df.is_empty() else df


def reliability_table(df: pl.DataFrame) -> pl.DataFrame:
    return _present(df, RELIABILITY).sort("population", "method", "subscale") if not df.is_empty() else df
