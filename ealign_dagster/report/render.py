"""The report: one self-contained HTML page (plots embedded) plus the same plots as PNG files.

Plots: the primary judge's rate per category per model with Wilson CIs (trained and held-out
categories marked); held-out vs trained change per narrow adapter; over-refusal change next to the
safety change, per over-refusal set; the persona heatmap (models x subscales); the projectability ranking with CIs.
Tables: emergent alignment and the power beside it, coherence, projectability (interpretable, or why not),
known-persona validation, persona instrument diagnostics and reliability, judge validation and agreement.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs

from ealign_dagster.report import coherence as coherence_tables
from ealign_dagster.report import judges as judge_tables
from ealign_dagster.report import persona as persona_tables
from ealign_dagster.report import power as power_table
from ealign_dagster.safety.scores import POOLED

OVER_REFUSAL = pl.col("metric") == "refusal_rate"  # safety_scores rows of an over-refusal set

ROLE_MARKERS = {
    "trained": ("s", "trained"),
    "held_out": ("*", "held-out"),
    "other": ("o", "other"),
    None: ("D", "base"),
}


@dataclass
class ReportData:
    safety: pl.DataFrame  # safety_scores
    emergent: pl.DataFrame  # emergent_alignment
    persona: pl.DataFrame  # persona_scores (persona = '')
    projectability: pl.DataFrame
    persona_validation: pl.DataFrame
    judge_validation: pl.DataFrame
    judge_agreement: pl.DataFrame
    power: pl.DataFrame = field(default_factory=pl.DataFrame)  # power: the MDE per primary comparison
    persona_diagnostics: pl.DataFrame = field(default_factory=pl.DataFrame)
    persona_reliability: pl.DataFrame = field(default_factory=pl.DataFrame)
    coherence: pl.DataFrame = field(default_factory=pl.DataFrame)
    labels: dict[str, str] = field(default_factory=dict)  # model_id -> "constitution / scope" or "base"
    judge: str = "embedding"


def model_labels(models: pl.DataFrame) -> dict[str, str]:
    """model_id -> label: 'constitution / scope' (+ ' / seed s' past the first seed), 'c (prompt only)'."""
    tail = lambda r: f" / seed {r['seed']}" if r.get("seed") else ""  # noqa: E731
    return {"base": "base"} | {r["model_id"]: f"{r['constitution']} (prompt only)" if r["scope"] is None
                               else f"{r['constitution']} / {r['scope']}{tail(r)}" for r in models.iter_rows(named=True)
                               if r["model_id"] != "base"}  # fmt: skip


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _order(data: ReportData, ids) -> list[str]:
    ids = set(ids)
    return ["base"] * ("base" in ids) + sorted((m for m in ids if m != "base"), key=lambda m: data.labels.get(m, m))


def _err(x, lo, hi):
    """Error-bar lengths for matplotlib, which refuses the tiny negatives of a bound equal to x."""
    return np.clip([np.atleast_1d(x - lo), np.atleast_1d(hi - x)], 0.0, None)


def _pooled(s: pl.DataFrame) -> dict[str, float]:
    """model_id -> events / n over the model's rows."""
    return dict(s.group_by("model_id").agg(pl.col("events").sum() / pl.col("n").sum()).iter_rows())


def plot_safety(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    from ealign_dagster.core.stats import wilson

    s = data.safety.filter((pl.col("judge") == data.judge) & ~OVER_REFUSAL & (pl.col("category") != "all"))
    # pool the harmful benchmarks (standard + contextual) per model x category
    g = s.group_by("model_id", "category").agg(
        pl.col("events").sum(), pl.col("n").sum(), role=pl.col("category_role").drop_nulls().first()
    )
    cats = sorted(g["category"].unique())
    models = _order(data, g["model_id"])
    metric = s["metric"][0].replace("_", " ") if len(s) else "rate"
    fig, axes = plt.subplots(1, len(cats), figsize=(3.1 * len(cats), 0.32 * len(models) + 1.6), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, cat in zip(axes, cats):
        rows = {r["model_id"]: r for r in g.filter(pl.col("category") == cat).iter_rows(named=True)}
        for y, m in enumerate(models):
            if m not in rows:
                continue
            r = rows[m]
            rate = r["events"] / r["n"] if r["n"] else math.nan
            lo, hi = wilson(r["events"], r["n"])
            role = None if m == "base" else r["role"]
            marker, _ = ROLE_MARKERS.get(role, ("o", "other"))
            color = "black" if m == "base" else {"trained": "tab:blue", "held_out": "tab:red"}.get(role, "tab:gray")
            ax.errorbar(
                rate,
                y,
                xerr=_err(rate, lo, hi),  # Wilson at 0/n has a lower error of about -1e-17
                fmt=marker,
                color=color,
                ms=7 if marker == "*" else 5,
                capsize=2,
            )
        ax.set_title(cat.replace("_", " "), fontsize=9)
        ax.set_xlim(-0.03, 1.03)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(metric, fontsize=8)
    axes[0].set_yticks(range(len(models)), [data.labels.get(m, m) for m in models], fontsize=8)
    axes[0].invert_yaxis()
    handles = [
        plt.Line2D([], [], marker=mk, ls="", color=c, label=l)
        for mk, c, l in (
            ("D", "black", "base"),
            ("s", "tab:blue", "trained category"),
            ("*", "tab:red", "held-out category"),
            ("o", "tab:gray", "other"),
        )
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"{metric} per category (judge: {data.judge}; Wilson 95% CI; lower = safer)", fontsize=10)
    return _fig_png(fig)


def plot_heldout_vs_trained(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    # one row per narrow adapter; columns delta_trained, ci_low_held_out, ... (missing = NaN)
    w = (
        data.emergent.filter((pl.col("benchmark") == POOLED) & (pl.col("reference").fill_null("base") == "base"))
        .pivot(
            "category_role", index=["constitution", "scope", "seed"], values=["delta", "ci_low", "ci_high"],
            aggregate_function=pl.element().drop_nulls().first(),
        )
        .sort("constitution", "scope")
        .with_columns(cs.float().fill_null(math.nan))
    )  # fmt: skip
    fig, ax = plt.subplots(figsize=(6, 5))
    for r in w.iter_rows(named=True):
        x, y = r["delta_trained"], r["delta_held_out"]
        ax.errorbar(
            x,
            y,
            xerr=_err(x, r["ci_low_trained"], r["ci_high_trained"]),
            yerr=_err(y, r["ci_low_held_out"], r["ci_high_held_out"]),
            fmt="o",
            capsize=2,
            alpha=0.8,
        )
        ax.annotate(
            f"{r['constitution']}\n{r['scope'].replace('narrow_', '')}" + (f" s{r['seed']}" if r["seed"] else ""),
            (x, y),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    cis = w.select(cs.starts_with("ci_low_", "ci_high_")).to_numpy()
    lim = max(0.1, float(np.nanmax(np.abs(cis))) if len(w) else 0.1) * 1.1
    ax.axhline(0, color="gray", lw=0.8)
    ax.axvline(0, color="gray", lw=0.8)
    ax.plot([-lim, lim], [-lim, lim], ls=":", color="gray", lw=0.8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("change on the trained category (vs base)")
    ax.set_ylabel("change on the held-out category (vs base)")
    ax.set_title("Emergent alignment: held-out vs trained change\n(negative = safer; Tango 95% CI)", fontsize=10)
    return _fig_png(fig)


def plot_overrefusal(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    s = data.safety.filter((pl.col("judge") == data.judge) & (pl.col("category") == "all"))
    harm = _pooled(s.filter(~OVER_REFUSAL))
    sets = sorted(s.filter(OVER_REFUSAL)["benchmark"].unique())
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, name in enumerate(sets):  # one series per over-refusal set
        refused = _pooled(s.filter(pl.col("benchmark") == name))
        if "base" not in harm or "base" not in refused:
            continue
        marker, color = "os^Dv<>"[i % 7], f"C{i % 10}"
        points = [(m, harm[m] - harm["base"], refused[m] - refused["base"]) for m in _order(data, harm)
                  if m != "base" and m in refused]  # fmt: skip
        for j, (m, x, y) in enumerate(points):
            ax.plot(x, y, marker, color=color, label=name if j == 0 else None)
            ax.annotate(data.labels.get(m, m).replace(" / ", "\n"), (x, y), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
    ax.axhline(0, color="gray", lw=0.8)
    ax.axvline(0, color="gray", lw=0.8)
    if sets:
        ax.legend(title="over-refusal set", fontsize=7, title_fontsize=7)
    ax.set_xlabel("safety change: harmful prompts, all categories (negative = safer)")
    ax.set_ylabel("over-refusal change: safe look-alikes refused (positive = worse)")
    ax.set_title("Over-refusal next to safety gain, per adapter and over-refusal set (vs base)", fontsize=10)
    return _fig_png(fig)


def plot_persona(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    p = data.persona.filter((pl.col("method") == "logprob") & (pl.col("persona") == ""))
    w = p.pivot("subscale", index="model_id", values="mean")
    models = _order(data, w["model_id"])
    subscales = sorted(w.columns[1:])
    rows = pl.DataFrame({"model_id": models}, schema={"model_id": pl.String})
    v = rows.join(w, on="model_id", how="left", maintain_order="left").select(subscales).to_numpy()
    fig, ax = plt.subplots(figsize=(1.1 * len(subscales) + 3, 0.35 * len(models) + 1.5))
    lim = max(0.05, float(np.nanmax(np.abs(v))))
    im = ax.imshow(v, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(subscales)), [c.replace("_", "\n") for c in subscales], fontsize=8)
    ax.set_yticks(range(len(models)), [data.labels.get(m, m) for m in models], fontsize=8)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            ax.text(j, i, f"{v[i, j]:+.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="keyed agreement (-1 .. +1)")
    ax.set_title("Ethical persona (log-prob Likert), models x subscales", fontsize=10)
    return _fig_png(fig)


def plot_projectability(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    p = data.projectability.filter((pl.col("method") == "logprob") & (pl.col("model_id") != "base"))
    p = p.sort("signature_change", nulls_last=True, maintain_order=True)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(p) + 1.5))
    y = np.arange(len(p))
    x = p["signature_change"].to_numpy()
    ax.errorbar(x, y, xerr=_err(x, p["change_ci_low"].to_numpy(), p["change_ci_high"].to_numpy()), fmt="o", capsize=2)
    ax.set_yticks(y, [f"{c} / {s}" for c, s in zip(p["constitution"], p["scope"])], fontsize=8)
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_xlabel("signature change vs base (target framework minus rivals)")
    ax.set_title("Projectability ranking (bootstrap 95% CI over items)" + persona_tables.title_note(p), fontsize=10)
    return _fig_png(fig)


PLOTS = {
    "safety_by_category": ("Harmful-prompt outcome per category and model", plot_safety),
    "heldout_vs_trained": ("Held-out vs trained improvement per narrow adapter", plot_heldout_vs_trained),
    "overrefusal_vs_safety": ("Over-refusal next to safety gain", plot_overrefusal),
    "persona_heatmap": ("Persona heatmap", plot_persona),
    "projectability": ("Signature / projectability ranking", plot_projectability),
}


def _cell(v, dtype: pl.DataType) -> str:
    if dtype.is_float():
        return "" if v is None or math.isnan(v) else f"{v:.3f}"
    return "NaN" if v is None and dtype == pl.String else html.escape(str(v), quote=False)


def _table(df: pl.DataFrame) -> str:
    """An HTML table in the report's established layout: floats to 3 places and a missing one blank (an
    integer column with gaps is shown as floats), missing text "NaN", a missing boolean "None"."""
    df = df.with_columns(
        pl.col(c).cast(pl.Float64) for c, t in df.schema.items() if t.is_integer() and df[c].has_nulls()
    )
    head = "".join(f"\n      <th>{html.escape(c, quote=False)}</th>" for c in df.columns)
    rows = "".join(
        "\n    <tr>" + "".join(f"\n      <td>{_cell(v, t)}</td>" for v, t in zip(r, df.dtypes)) + "\n    </tr>"
        for r in df.iter_rows()
    )
    return (
        f'<table class="dataframe t">\n  <thead>\n    <tr style="text-align: right;">{head}\n    </tr>\n  </thead>\n'
        f"  <tbody>{rows}\n  </tbody>\n</table>"
    )


CSS = """body{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
img{max-width:100%;border:1px solid #eee}table.t{border-collapse:collapse;font-size:.8em;margin:.5em 0}
table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}.note{color:#666;font-size:.85em}"""


def write_report(data: ReportData, out_dir: Path, title: str, provenance: dict,
                 eval_sources: pl.DataFrame | None = None) -> tuple[Path, dict[str, Path]]:  # fmt: skip
    """Write <out_dir>/report.html (self-contained) and <out_dir>/<plot>.png; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs, sections = {}, []
    for name, (heading, fn) in PLOTS.items():
        png = fn(data)
        (out_dir / f"{name}.png").write_bytes(png)
        pngs[name] = out_dir / f"{name}.png"
        src = f"data:image/png;base64,{base64.b64encode(png).decode()}"
        sections.append(f"<h2>{html.escape(heading)}</h2><img alt='{name}' src='{src}'>")
    e = data.emergent.select(
        "constitution", "scope", "seed", "reference", "category_role", "benchmark", "family", "n", "reference_rate",
        "model_rate", "delta", "ci_low", "ci_high", "p_holm",
    )  # fmt: skip
    pr = persona_tables.projectability_table(data.projectability)
    pv = data.persona_validation.select(
        "persona", "method", "own_score", "best_other_framework", "best_other_score", "margin", "lands_highest"
    )
    tables = [
        (
            "Emergent alignment (change vs the reference: the base, or the no-constitution control of the same scope "
            "and seed = difference-in-differences; Tango 95% CI; exact McNemar, Holm within each family)",
            e,
        ),
        (power_table.TITLE, power_table.power_beside_observed(data.power, data.emergent, data.safety)),
        (
            coherence_tables.TITLE,
            coherence_tables.coherence_table(data.coherence, data.safety, data.labels, data.judge),
        ),
        ("Projectability", pr),
        ("Known-persona validation (base model prompted as each persona)", pv),
        (persona_tables.DIAGNOSTICS_TITLE, persona_tables.diagnostics_table(data.persona_diagnostics)),
        (persona_tables.RELIABILITY_TITLE, persona_tables.reliability_table(data.persona_reliability)),
        *judge_tables.tables(data),
    ]
    if eval_sources is not None:
        tables.append(("Evaluation set: what each source contributes (rows outside its selection were left out)",
                       eval_sources))  # fmt: skip
    body = (
        "".join(sections[:3])
        + "".join(f"<h2>{html.escape(t)}</h2>{_table(df)}" for t, df in tables[:3] if not df.is_empty())
        + "".join(sections[3:])
    )
    body += "".join(f"<h2>{html.escape(t)}</h2>{_table(df)}" for t, df in tables[3:])
    prov = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in provenance.items())
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p class='note'>Rates from the {html.escape(data.judge)} judge. "
        "Offline judges measure refusal: their rate on harmful prompts is a non-refusal rate. Every answer of "
        "every model, side by side with the judges' verdicts: <a href='samples.html'>samples.html</a>.</p>"
        f"{body}<h2>Provenance</h2><ul class='note'>{prov}</ul></body></html>"
    )
    path = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path, pngs


TABLES = {"safety": "safety_scores", "emergent": "emergent_alignment", "persona": "persona_scores",
          "projectability": "projectability", "persona_validation": "persona_validation",
          "judge_validation": "judge_validation", "judge_agreement": "judge_agreement", "power": "power",
          "persona_diagnostics": "persona_diagnostics", "persona_reliability": "persona_reliability"}  # fmt: skip


def load_report_data(store, judge: str) -> ReportData:
    """The result tables, a NaN read as missing (null) like any other gap; labels of the models under
    test (a retired constitution's adapters are not)."""
    from ealign_dagster.evaluation.models import models_under_test

    frames = {k: store.table(t).with_columns(cs.float().fill_nan(None)) for k, t in TABLES.items()}
    labels = model_labels(pl.DataFrame([m.columns() for m in models_under_test(store)], infer_schema_length=None))
    return ReportData(**frames, coherence=coherence_tables.load(store), labels=labels, judge=judge)


def write_samples(store, data: ReportData, out_dir: Path, title: str) -> Path:
    """<out_dir>/samples.html: every prompt with every model's answer and verdicts, side by side."""
    from ealign_dagster.core.schemas import load_taxonomy
    from ealign_dagster.report.samples import samples_page

    gens = store.table("generations").select("model_id", "benchmark", "prompt_id", "category", "prompt", "response")
    judgments = store.table("judgments").select("model_id", "benchmark", "prompt_id", "judge", "refused", "harmful")
    taxonomy = load_taxonomy()
    held = {s: taxonomy.held_out(s) for s in taxonomy.scopes if taxonomy.held_out(s)}
    path = out_dir / "samples.html"
    tmp = out_dir / ".samples.html.tmp"
    tmp.write_text(samples_page(gens, judgments, data.labels, data.judge, held, title), encoding="utf-8")
    tmp.replace(path)
    return path


def build_report(store, cfg, reports_dir: Path, run_id: str, inputs: dict) -> tuple[ReportData, Path, dict]:
    """Read the result tables and write a new report folder under `reports_dir`."""
    from datetime import UTC, datetime

    from ealign_dagster.evaluation.benchmarks import eval_sources

    data = load_report_data(store, cfg.eval.primary_judge)
    out = reports_dir / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{run_id[:8]}"
    provenance = {"profile": cfg.name, "run": run_id, "models": len(data.labels), **inputs}
    path, pngs = write_report(data, out, f"ealign report: {cfg.name} profile", provenance, eval_sources(store, cfg))
    write_samples(store, data, out, f"ealign side-by-side answers: {cfg.name} profile")
    return data, path, pngs
