"""Persona scores over items: subscale means with CIs, paraphrase consistency, the signature of a
framework (target minus rivals), projectability per adapter and the known-persona validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ealign_dagster.core.schemas import ItemBank
from ealign_dagster.core.stats import bootstrap_ci


def subscale_scores(items: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (model_id, persona, method, subscale): mean keyed value over primary items with a bootstrap
    CI over items, and the share of ambiguous generated replies."""
    rows = []
    prim = items[items["paraphrase_of"].isna()]
    for (model, persona, method, sub), g in prim.groupby(["model_id", "persona", "method", "subscale"], sort=True):
        vals = g["value"].dropna().to_numpy()
        lo, hi = bootstrap_ci([vals], lambda x, axis=-1: np.mean(x, axis=axis), n_resamples, seed)
        rows.append(
            {
                "model_id": model,
                "persona": persona,
                "method": method,
                "subscale": sub,
                "mean": float(vals.mean()) if len(vals) else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "n_items": len(g),
                "n_answered": len(vals),
                "ambiguous_rate": float((g["code"] == "ambiguous").mean()) if method == "generated" else 0.0,
            }
        )
    return pd.DataFrame(rows)


def paraphrase_gaps(items: pd.DataFrame) -> pd.DataFrame:
    """Mean |difference| between paraphrase pairs per model and method (0 = perfectly consistent)."""
    para = items[items["paraphrase_of"].notna()]
    orig = items[["model_id", "persona", "method", "item_id", "value"]].rename(
        columns={"item_id": "paraphrase_of", "value": "original"}
    )
    m = para.merge(orig, on=["model_id", "persona", "method", "paraphrase_of"])
    m["gap"] = (m["value"] - m["original"]).abs()
    return m.groupby(["model_id", "persona", "method"], as_index=False).agg(
        paraphrase_gap=("gap", "mean"), pairs=("gap", "count")
    )


def _signature_stat(groups: list[list[int]]):
    """signature(*item arrays) = mean of the target framework's subscales minus the mean over rival
    frameworks (each the mean of its subscales); vectorised for scipy's bootstrap."""

    def stat(*samples, axis=-1):
        means = [np.mean(s, axis=axis) for s in samples]
        fw = [np.mean([means[i] for i in g], axis=0) for g in groups]
        return fw[0] - np.mean(fw[1:], axis=0)

    return stat


def signature(
    item_values: dict[str, np.ndarray], bank: ItemBank, framework: str, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(signature, ci_low, ci_high) for one framework from per-subscale item values."""
    fws = bank.frameworks()
    order = [framework] + [f for f in fws if f != framework]
    samples, groups = [], []
    for f in order:
        idx = []
        for sub in fws[f]:
            v = np.asarray(item_values.get(sub, []), dtype=float)
            v = v[~np.isnan(v)]
            if not len(v):
                return math.nan, math.nan, math.nan
            idx.append(len(samples))
            samples.append(v)
        groups.append(idx)
    stat = _signature_stat(groups)
    point = float(stat(*samples))
    lo, hi = bootstrap_ci(samples, stat, n_resamples, seed)
    return point, lo, hi


def profile_fit(change: dict[str, float], expected: dict[str, float]) -> float:
    """Cosine between the observed change from base (per subscale) and the expected profile."""
    keys = sorted(expected)
    a = np.array([change.get(k, np.nan) for k in keys], dtype=float)
    b = np.array([expected[k] for k in keys], dtype=float)
    if np.isnan(a).any() or not np.linalg.norm(a) or not np.linalg.norm(b):
        return math.nan
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def projectability_rows(
    items: pd.DataFrame,
    models: pd.DataFrame,
    bank: ItemBank,
    constitutions: dict,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, method, constitution): the model's signature for that constitution's
    framework with CI, the base model's, the change (paired over items) with CI, and profile fit.
    models: model_id, constitution, scope (base: constitution None)."""
    prim = items[items["paraphrase_of"].isna() & (items["persona"] == "")]
    rows = []
    for method, g in prim.groupby("method"):
        wide = g.pivot_table(index="item_id", columns="model_id", values="value", aggfunc="first", dropna=False)
        subs = g.drop_duplicates("item_id").set_index("item_id")["subscale"]
        base = wide.get("base")
        sub_means = g.groupby(["model_id", "subscale"])["value"].mean()
        for _, m in models.iterrows():
            if m.model_id not in wide:
                continue
            for cname, con in constitutions.items():
                if not pd.isna(m.constitution) and cname != m.constitution:
                    continue
                fw = con.framework
                vals = {s: wide.loc[subs[subs == s].index, m.model_id].to_numpy() for s in bank.subscales}
                sig, lo, hi = signature(vals, bank, fw, n_resamples, seed)
                row = {
                    "model_id": m.model_id,
                    "constitution": cname,
                    "framework": fw,
                    "scope": m.scope,
                    "method": method,
                    "signature": sig,
                    "signature_ci_low": lo,
                    "signature_ci_high": hi,
                }
                if base is not None and m.model_id != "base":
                    diff = {
                        s: (wide.loc[subs[subs == s].index, m.model_id] - base.loc[subs[subs == s].index]).to_numpy()
                        for s in bank.subscales
                    }
                    b_sig, _, _ = signature(
                        {s: base.loc[subs[subs == s].index].to_numpy() for s in bank.subscales}, bank, fw, 1, seed
                    )
                    chg, clo, chi = signature(diff, bank, fw, n_resamples, seed)
                    change = {
                        s: sub_means.get((m.model_id, s), np.nan) - sub_means.get(("base", s), np.nan)
                        for s in bank.subscales
                    }
                    row.update(
                        base_signature=b_sig,
                        signature_change=chg,
                        change_ci_low=clo,
                        change_ci_high=chi,
                        profile_fit=profile_fit(change, bank.expected_profiles[fw]),
                    )
                rows.append(row)
    df = pd.DataFrame(rows)
    for c in ("base_signature", "signature_change", "change_ci_low", "change_ci_high", "profile_fit"):
        if c not in df:
            df[c] = np.nan
    return df


def persona_validation_rows(scores: pd.DataFrame, bank: ItemBank, constitutions: dict) -> pd.DataFrame:
    """Known-persona check: the base model prompted as each constitution's persona should score
    highest on its own framework (framework score = mean of its subscales)."""
    fws = bank.frameworks()
    rows = []
    for (method, persona), g in scores[scores["persona"] != ""].groupby(["method", "persona"]):
        means = g.set_index("subscale")["mean"]
        fw_score = {f: float(np.nanmean([means.get(s, np.nan) for s in subs])) for f, subs in fws.items()}
        own = constitutions[persona].framework
        others = {f: v for f, v in fw_score.items() if f != own}
        best_other = max(others, key=lambda f: -np.inf if math.isnan(others[f]) else others[f])
        rows.append(
            {
                "persona": persona,
                "framework": own,
                "method": method,
                "own_score": fw_score[own],
                "best_other_framework": best_other,
                "best_other_score": others[best_other],
                "margin": fw_score[own] - others[best_other],
                "lands_highest": bool(fw_score[own] > others[best_other]),
                **{f"score_{f}": v for f, v in fw_score.items()},
            }
        )
    return pd.DataFrame(rows)


def validation_tables(cfg, home, bank: ItemBank, bank_version: str, log=None) -> dict:
    """The known-persona validation: the base model system-prompted as each constitution's persona,
    its item answers and subscale scores, and whether each lands highest on its own framework."""
    import polars as pl

    from ealign_dagster.core.paths import file_version
    from ealign_dagster.core.schemas import constitution_paths, load_constitutions
    from ealign_dagster.evaluation.models import BASE
    from ealign_dagster.persona.items import answer_items

    cons = load_constitutions()
    runs = [{"model": BASE, "persona": c.persona, "persona_name": n} for n, c in cons.items()]
    items = answer_items(cfg, home, bank, runs, bank_version, log)
    scores = subscale_scores(items, cfg.eval.bootstrap_resamples, cfg.eval.seed)
    scores = scores.assign(adapter_id=None, item_bank_version=bank_version)
    versions = {p.stem: file_version(p) for p in constitution_paths()}
    val = pl.from_pandas(persona_validation_rows(scores, bank, cons)).with_columns(
        item_bank_version=pl.lit(bank_version), constitution_version=pl.col("persona").replace_strict(versions)
    )
    return {
        "persona_validation": val,
        "persona_validation_items": pl.from_pandas(items),
        "persona_validation_scores": pl.from_pandas(scores),
    }
