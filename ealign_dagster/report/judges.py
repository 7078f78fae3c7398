"""The report's judge tables: validation on held-back human labels and agreement between judges
(pooled, per prompt role and category, per model), each estimate beside its 95% interval."""

from __future__ import annotations

import polars as pl

VALIDATION_TITLE = (
    "Judge validation (held-back human-labelled refusals; positive = refusal; 95% CI in brackets: Wilson for "
    "accuracy, precision, recall and false-positive rate, percentile bootstrap with refusals and non-refusals "
    "resampled separately for F1 and ROC-AUC, large-sample for Cohen's kappa against the human labels)"
)
AGREEMENT_TITLE = (
    "Judge agreement on refusal by prompt role and category (raw agreement with Wilson 95% CI; Cohen's kappa "
    "with the large-sample 95% CI; rate_a / rate_b: each judge's refusal rate)"
)
PER_MODEL_TITLE = "Judge agreement on refusal per model (as above, all prompts of the model)"
VALIDATION_METRICS = ["accuracy", "precision", "recall", "fpr", "f1", "roc_auc", "kappa"]
ALL = "all"


def _fmt(v) -> str | None:
    return None if v is None or v != v else f"{v:.3f}"


def with_ci(df: pl.DataFrame, metric: str) -> pl.Expr:
    """'est [low, high]' to 3 places; the estimate alone where there is no interval; blank where there is
    no estimate."""
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    if lo not in df.columns or hi not in df.columns:
        return pl.col(metric).map_elements(_fmt, return_dtype=pl.String, skip_nulls=False).alias(metric)

    def cell(r: dict) -> str | None:
        est, low, high = (_fmt(r[c]) for c in (metric, lo, hi))
        return est if est is None or low is None or high is None else f"{est} [{low}, {high}]"

    return pl.struct(metric, lo, hi).map_elements(cell, return_dtype=pl.String).alias(metric)


def _present(df: pl.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in df.columns]


def validation_table(df: pl.DataFrame) -> pl.DataFrame:
    """One row per judge x category ('all' first), every metric with its interval."""
    if df.is_empty():
        return df
    if "category" in df.columns:
        df = df.sort(pl.col("category") != ALL, "category", "judge", maintain_order=True)
    metrics = [with_ci(df, m) for m in _present(df, VALIDATION_METRICS)]
    note = [pl.col("note").fill_null("")] if "note" in df.columns else []
    return df.select(*_present(df, ["judge", "category", "n", "positives"]), *metrics, *note)


def _agreement(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    shown = [*_present(df, ["judge_a", "judge_b", *keys, "n"]), *(with_ci(df, m) for m in _present(df, ["agreement"]))]
    shown += [pl.col(c).round(3) for c in _present(df, ["rate_a", "rate_b"])]
    note = [pl.col("note").fill_null("")] if "note" in df.columns else []
    return df.select(*shown, *(with_ci(df, m) for m in _present(df, ["kappa"])), *note)


def agreement_tables(df: pl.DataFrame, labels: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pooled over models: overall, per role, per role x category; per model, labelled)."""
    if df.is_empty() or "model_id" not in df.columns:
        return _agreement(df, []), pl.DataFrame()
    pooled = df.filter(pl.col("model_id") == ALL)
    if "role" in pooled.columns:
        first = (pl.col("role") != ALL).cast(pl.Int8) + (pl.col("category") != ALL).cast(pl.Int8)
        pooled = pooled.sort("judge_a", "judge_b", first, "role", "category", maintain_order=True)
    per_model = (
        df.filter(pl.col("model_id") != ALL)
        .with_columns(
            model=pl.col("model_id").replace_strict(labels, default=pl.col("model_id"), return_dtype=pl.String)
        )
        .sort("judge_a", "judge_b", pl.col("model_id") != "base", "model", maintain_order=True)
    )
    return _agreement(pooled, _present(pooled, ["role", "category"])), _agreement(per_model, ["model"])


def tables(data) -> list[tuple[str, pl.DataFrame]]:
    """(title, table) for the report: validation, agreement by role and category, agreement per model."""
    pooled, per_model = agreement_tables(data.judge_agreement, data.labels)
    out = [(VALIDATION_TITLE, validation_table(data.judge_validation)), (AGREEMENT_TITLE, pooled)]
    return out + ([(PER_MODEL_TITLE, per_model)] if not per_model.is_empty() else [])
