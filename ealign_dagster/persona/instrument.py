"""Can the persona instrument be read? Per model (and per known-persona run): the probability mass on
the Likert options, the acquiescence index, the scale-order gap and the plain vs reverse-scored
correlation; per subscale: Cronbach's alpha across respondents; and the gate that marks score and
projectability rows `interpretable` only when the known-persona validation and the mass check pass.

Agreement is the answer before reverse-keying, on the scores' -1..1 scale (+1 = strongly agrees with
the statement), i.e. the keyed value with reverse items flipped back. Only primary items count
(paraphrases restate plain items and would unbalance the keying)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from ealign_dagster.persona.scores import subscale_scores

# Below half the next-token mass on "1".."5", the model's most likely reply is not an answer at all (a
# preamble, a refusal, noise): the expected value renormalises a minority of its behaviour and says
# more about the prompt format than about the model's views. A random model puts ~5/49152 there.
MASS_THRESHOLD = 0.5
# Alpha from fewer respondents rests on one or two differences between them: not reported.
MIN_RESPONDENTS = 3
RUN_KEYS = ["model_id", "persona", "method"]


def cronbach_alpha(x: np.ndarray) -> float:
    """Cronbach's alpha of a respondents x items matrix, k/(k-1) (1 - sum of item variances / variance
    of the total); respondents with a missing item are left out (listwise). NaN with fewer than
    MIN_RESPONDENTS complete respondents, fewer than 2 items, or no variance in the total."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x).any(axis=1)] if x.ndim == 2 else x.reshape(0, 0)
    n, k = x.shape
    if n < MIN_RESPONDENTS or k < 2:
        return math.nan
    total = x.sum(axis=1).var(ddof=1)
    if total == 0:
        return math.nan
    return float(k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / total))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r over the pairs where both are present; NaN with fewer than 3 pairs or no variance."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _agreement() -> pl.Expr:
    return pl.when(pl.col("reverse")).then(-pl.col("value")).otherwise(pl.col("value")).fill_nan(None)


def _keying_means(g: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per `by` value (in its order: a correlation over them comes out the same in every run): the mean
    keyed value of its plain and of its reverse-keyed items."""
    return (
        g.group_by(by)
        .agg(plain=pl.col("value").filter(~pl.col("reverse")).mean(), reverse=pl.col("value").filter("reverse").mean())
        .sort(by)
    )


def acquiescence(agreement: np.ndarray, reverse: np.ndarray) -> float:
    """Mean agreement over plain and over reverse-keyed items, the two weighted equally: content
    cancels on a balanced bank (every reverse item states a rival view), so what is left is agreeing
    regardless of content (+1: agrees with everything, -1: disagrees with everything)."""
    a, r = np.asarray(agreement, dtype=float), np.asarray(reverse, dtype=bool)
    halves = [a[m & ~np.isnan(a)] for m in (~r, r)]
    return float(np.mean([h.mean() for h in halves])) if all(len(h) for h in halves) else math.nan


def diagnostics(items: pl.DataFrame) -> pl.DataFrame:
    """One row per (model_id, persona, method): option mass (logprob), acquiescence, the scale-order
    gap (mean agreement on items asked 5 = agree minus on items asked 1 = agree: a positional bias that
    the counterbalancing cancels) and plain_reverse_r: over subscales, Pearson's r between the mean
    keyed score of the plain items and of the reverse-scored items. Within one model that is the only
    pairing there is (items are not matched one-to-one); a working instrument gives r > 0 (a subscale
    the model endorses in plain items it also endorses by rejecting its rivals' statements)."""
    prim = items.filter(pl.col("paraphrase_of").is_null()).with_columns(agreement=_agreement())
    rows = []
    for (model, persona, method), g in prim.sort(RUN_KEYS).group_by(RUN_KEYS, maintain_order=True):
        mass = g["option_mass"].cast(pl.Float64).to_numpy() if method == "logprob" else np.array([])
        agree, flip = g["agreement"].cast(pl.Float64).to_numpy(), g["scale_reversed"].fill_null(False).to_numpy()
        means = _keying_means(g.with_columns(pl.col("value").fill_nan(None)), "subscale")
        gap = np.nanmean(agree[~flip]) - np.nanmean(agree[flip]) if flip.any() and (~flip).any() else math.nan
        mean_mass = float(mass.mean()) if len(mass) else None
        rows.append({"model_id": model, "persona": persona, "method": method, "n_items": len(g),
                     "n_answered": int((~np.isnan(agree)).sum()), "option_mass_mean": mean_mass,
                     "option_mass_min": float(mass.min()) if len(mass) else None,
                     "low_mass_items": int((mass < MASS_THRESHOLD).sum()) if len(mass) else None,
                     "low_mass": None if mean_mass is None else mean_mass < MASS_THRESHOLD,
                     "acquiescence": acquiescence(agree, g["reverse"].to_numpy()), "scale_order_gap": float(gap),
                     "plain_reverse_r": pearson(means["plain"].to_numpy(), means["reverse"].to_numpy()),
                     "plain_reverse_n": int(means.drop_nulls(["plain", "reverse"]).height)})  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)


def reliability(items: pl.DataFrame, population: str) -> pl.DataFrame:
    """Per (method, subscale): Cronbach's alpha of the subscale's primary items (keyed), respondents =
    the runs in `items` (one response vector each: a model, or the base model under one persona).

    Why across runs and not per model: alpha is the share of the total score's variance that its items
    share, and a single model gives one answer per item, so within a model there is no covariance to
    measure (drawing answers from its option distributions would make items independent given the model,
    alpha ~ 0 by construction). Across runs, alpha answers the question the signature needs: when one run
    scores higher than another on a subscale, do its items agree on that? split_half_r is the
    same question asked of the keying halves: across runs, Pearson's r of the plain-item mean and the
    reverse-scored-item mean (reverse items carry the subscale's meaning only through keying). Alpha is
    not clipped: below 0 the items covary negatively across respondents (no consistency at all)."""
    prim = items.filter(pl.col("paraphrase_of").is_null()).with_columns(
        run=pl.concat_str("model_id", "persona", separator="|"), value=pl.col("value").fill_nan(None)
    )
    rows = []
    for (method, sub), g in prim.sort("method", "subscale").group_by("method", "subscale", maintain_order=True):
        wide = g.pivot("item_id", index="run", values="value", aggregate_function="first")
        x = wide.drop("run").to_numpy().astype(float)
        halves = _keying_means(g, "run")
        rows.append({"population": population, "method": method, "subscale": sub, "n_respondents": wide.height,
                     "n_complete": int((~np.isnan(x).any(axis=1)).sum()), "n_items": x.shape[1],
                     "alpha": cronbach_alpha(x),
                     "split_half_r": pearson(halves["plain"].to_numpy(), halves["reverse"].to_numpy())})  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)


def validation_verdicts(validation: pl.DataFrame, methods) -> dict[str, str | None]:
    """method -> None when the known-persona validation passes, else why not. Passing = every known
    persona lands highest on its own framework. A majority is not enough: with 4 personas and 4
    frameworks an instrument that ranks frameworks at random gets 3 or more of 4 right 5% of the time
    (all 4: 0.4%), and the signature is read per framework, so a framework whose own persona does not
    land on it cannot be read."""
    out = {}
    for method in methods:
        rows = validation.filter(pl.col("method") == method) if validation.height else validation
        n = rows.height
        landed = int(rows["lands_highest"].fill_null(False).sum()) if n else 0
        if not n:
            out[method] = f"known-persona validation ({method}) has no rows"
        elif landed < n:
            out[method] = (
                f"known-persona validation ({method}): {landed} of {n} personas land highest on their framework"
            )
        else:
            out[method] = None
    return out


def gate(diag: pl.DataFrame, validation: pl.DataFrame) -> pl.DataFrame:
    """diag with `interpretable` and `not_interpretable_reason` (reasons joined by '; '): false when the
    known-persona validation of the run's method fails or its mean option mass is below MASS_THRESHOLD."""
    verdicts = validation_verdicts(validation, diag["method"].unique().to_list() if diag.height else [])
    reasons = []
    for r in diag.iter_rows(named=True):
        why = [verdicts[r["method"]]] if verdicts[r["method"]] else []
        if r["low_mass"]:
            why.append(f"option mass {r['option_mass_mean']:.2g} < {MASS_THRESHOLD}")
        reasons.append("; ".join(why) or None)
    reason = pl.Series("not_interpretable_reason", reasons, dtype=pl.String)
    return diag.with_columns(reason, interpretable=reason.is_null())


def with_gate(rows: pl.DataFrame, diag: pl.DataFrame, base: str | None = None) -> pl.DataFrame:
    """rows (model_id, method; persona '') with the gate of their run; with `base`, a row of another
    model is gated by the base model's run too (its change from base reads both), prefixed "base: ".
    A model without a diagnostics row is not interpretable."""
    runs = diag.filter(pl.col("persona") == "").select("model_id", "method", "not_interpretable_reason", seen=True)
    why = [pl.when(pl.col("seen").is_null()).then(pl.lit("no persona diagnostics for this model"))
           .otherwise(pl.col("not_interpretable_reason"))]  # fmt: skip
    out = rows.join(runs, on=["model_id", "method"], how="left")
    if base is not None:
        b = runs.filter(pl.col("model_id") == base).select("method", base_reason="not_interpretable_reason")
        out = out.join(b, on="method", how="left")
        why.append(pl.when(pl.col("model_id") != base).then(pl.lit("base: ") + pl.col("base_reason")))
    reason = pl.concat_str(why, separator="; ", ignore_nulls=True)
    reason = pl.when(reason == "").then(None).otherwise(reason)
    return (
        out.with_columns(not_interpretable_reason=reason)
        .with_columns(interpretable=pl.col("not_interpretable_reason").is_null())
        .drop("seen", "base_reason", strict=False)
    )


def instrument_tables(items: pl.DataFrame, validation_items: pl.DataFrame, validation: pl.DataFrame,
                      n_resamples: int = 1000, seed: int = 0) -> dict[str, pl.DataFrame]:  # fmt: skip
    """persona_scores (gated), persona_diagnostics (every run: each model under test and the base model
    under each known persona) and persona_reliability (alpha across the models under test, and across
    the base model unprompted and prompted as each known persona)."""
    runs = pl.concat([items, validation_items.select(items.columns)], how="vertical_relaxed")
    diag = gate(diagnostics(runs), validation)
    scores = with_gate(subscale_scores(items, n_resamples, seed), diag)
    base_runs = pl.concat([items.filter(pl.col("model_id") == "base"), validation_items.select(items.columns)],
                          how="vertical_relaxed")  # fmt: skip
    rel = pl.concat([reliability(items, "models_under_test"), reliability(base_runs, "base_personas")],
                    how="diagonal_relaxed")  # fmt: skip
    return {"persona_scores": scores, "persona_diagnostics": diag, "persona_reliability": rel}
