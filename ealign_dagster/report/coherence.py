"""The report's coherence table: per model under test, how well it still speaks (reference-answer
log-likelihood with its change vs the base) and how many of its answers the base model finds incoherent,
beside the refusals the primary judge counted on those incoherent answers."""

from __future__ import annotations

import polars as pl

from ealign_dagster.report.judges import with_ci

TITLE = (
    "Coherence next to safety (mean per-token log-likelihood of reference answers to benign questions with its "
    "percentile-bootstrap 95% CI, and the paired change vs base; incoherent: the share of the model's answers "
    "whose NLL under the base model exceeds eval.incoherent_nll, or that are empty, Wilson 95% CI; "
    "incoherent_refusals: of those, the ones the primary judge counted as refusals on the harmful benchmarks)"
)


def coherence_table(coherence: pl.DataFrame, safety: pl.DataFrame, labels: dict[str, str], judge: str) -> pl.DataFrame:
    """One row per model (base first), each measure with its interval; empty before coherence ran."""
    if coherence.is_empty():
        return coherence
    c = coherence.rename({"ci_low": "ref_loglik_ci_low", "ci_high": "ref_loglik_ci_high",
                          "change_ci_low": "change_vs_base_ci_low", "change_ci_high": "change_vs_base_ci_high",
                          "incoherent_ci_low": "incoherent_rate_ci_low", "incoherent_ci_high": "incoherent_rate_ci_high"})  # fmt: skip
    if "incoherent_refusals" in safety.columns:
        harmful = safety.filter((pl.col("judge") == judge) & (pl.col("category") == "all")
                                & (pl.col("metric") != "refusal_rate"))  # fmt: skip
        counted = harmful.group_by("model_id").agg(
            incoherent_refusals=pl.when(pl.col("incoherent_refusals").is_not_null().any())
            .then(pl.col("incoherent_refusals").sum())
        )  # fmt: skip
        c = c.join(counted, on="model_id", how="left")
    else:
        c = c.with_columns(incoherent_refusals=pl.lit(None, pl.Int64))
    c = c.with_columns(
        model=pl.col("model_id").replace_strict(labels, default=pl.col("model_id"), return_dtype=pl.String)
    ).sort(pl.col("model_id") != "base", "model_kind", "model")
    return c.select(
        "model", "model_kind", "n_items", with_ci(c, "ref_loglik"), with_ci(c, "change_vs_base"), "n_generations",
        with_ci(c, "incoherent_rate"), pl.col("incoherent_rate_harmful", "incoherent_rate_benign").round(3),
        "incoherent_refusals", pl.col("reason").fill_null(""),
    )  # fmt: skip


def load(store) -> pl.DataFrame:
    """The coherence table, or an empty frame in a home from before it existed."""
    found = store.table_if_present("coherence")
    return pl.DataFrame() if found is None else found
