"""Side by side: each evaluation prompt with the base model's and every other model's answer and each
judge's verdict, in one static HTML page (no server) filterable by benchmark, category, held-out scope
and "verdict changed vs base" (on the primary judge)."""

from __future__ import annotations

import html

import polars as pl

KEYS = ["model_id", "benchmark", "prompt_id"]
SCRIPT = """
function apply() {
  const want = id => document.getElementById(id).value;
  const changed = document.getElementById('changed').checked;
  let shown = 0;
  for (const s of document.querySelectorAll('section.p')) {
    const ok = (!want('bench') || s.dataset.benchmark === want('bench'))
      && (!want('cat') || s.dataset.category === want('cat'))
      && (!want('held') || s.dataset.heldout.split(' ').includes(want('held')))
      && (!changed || s.dataset.changed === '1');
    s.style.display = ok ? '' : 'none';
    shown += ok;
  }
  document.getElementById('count').textContent = shown + ' prompts';
}
document.querySelectorAll('select, input').forEach(e => e.addEventListener('change', apply));
apply();
"""
CSS = """body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}
.bar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}
section.p{border-bottom:1px solid #eee;padding:.6em 0}.prompt{white-space:pre-wrap;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}td{border-top:1px solid #f0f0f0;padding:3px 6px;
vertical-align:top}td.m{width:15em;color:#555}td.a{white-space:pre-wrap}.v{font-size:12px;white-space:nowrap}
.refused{color:#1a7f37}.answered{color:#b35900}tr.changed{background:#fff6d6}.tag{color:#777;font-size:12px}"""


def _verdicts(judgments: pl.DataFrame) -> dict[tuple, list[tuple[str, bool, bool | None]]]:
    out: dict[tuple, list] = {}
    for r in judgments.sort("judge").iter_rows(named=True):
        out.setdefault((r["model_id"], r["benchmark"], r["prompt_id"]), []).append((r["judge"], r["refused"],
                                                                                    r["harmful"]))  # fmt: skip
    return out


def _options(id_: str, label: str, values) -> str:
    opts = "".join(f"<option>{html.escape(v)}</option>" for v in sorted(set(values)))
    return f"<label>{label} <select id='{id_}'><option value=''>all</option>{opts}</select></label> "


def samples_page(gens: pl.DataFrame, judgments: pl.DataFrame, labels: dict[str, str], primary: str,
                 held_out: dict[str, str], title: str) -> str:  # fmt: skip
    """gens: model_id, benchmark, prompt_id, category, prompt, response; judgments: KEYS, judge, refused,
    harmful; labels: model_id -> label, in display order (base first); held_out: narrow scope -> its
    held-out category."""
    verdicts = _verdicts(judgments)
    primary_refused = {k: next((r for j, r, _ in v if j == primary), None) for k, v in verdicts.items()}
    order = {m: i for i, m in enumerate(labels)}
    sections = []
    prompts = gens.select("benchmark", "prompt_id", "category", "prompt").unique(["benchmark", "prompt_id"])
    answers = gens.partition_by("benchmark", "prompt_id", as_dict=True)
    for p in prompts.sort("benchmark", "category", "prompt_id").iter_rows(named=True):
        rows = answers[(p["benchmark"], p["prompt_id"])].iter_rows(named=True)
        rows = sorted(rows, key=lambda r: order.get(r["model_id"], len(order)))
        base = primary_refused.get(("base", p["benchmark"], p["prompt_id"]))
        trs, any_changed = [], False
        for r in rows:
            key = (r["model_id"], p["benchmark"], p["prompt_id"])
            changed = r["model_id"] != "base" and base is not None and primary_refused.get(key) not in (None, base)
            any_changed |= changed
            v = " ".join(
                f"<span class='v {'refused' if ref else 'answered'}'>{html.escape(j)}: "
                f"{'refused' if ref else 'answered'}{'' if harm is None else ', harmful' if harm else ', harmless'}</span>"
                for j, ref, harm in verdicts.get(key, [])
            )  # fmt: skip
            trs.append(f"<tr class='{'changed' if changed else ''}'><td class='m'>{html.escape(labels.get(r['model_id'], r['model_id']))}"
                       f"</td><td class='a'>{html.escape(r['response'])}</td><td>{v}</td></tr>")  # fmt: skip
        held = " ".join(s for s, c in held_out.items() if c == p["category"])
        text = p["prompt"] if len(p["prompt"]) <= 600 else p["prompt"][:600] + " …"
        sections.append(
            f"<section class='p' data-benchmark='{html.escape(p['benchmark'])}' data-category='"
            f"{html.escape(p['category'])}' data-heldout='{html.escape(held)}' data-changed='{int(any_changed)}'>"
            f"<div class='tag'>{html.escape(p['benchmark'])} · {html.escape(p['category'])}"
            f"{' · held out for ' + html.escape(held) if held else ''} · {html.escape(p['prompt_id'])}</div>"
            f"<div class='prompt'>{html.escape(text)}</div><table>{''.join(trs)}</table></section>"
        )
    bar = (
        _options("bench", "benchmark", prompts["benchmark"]) + _options("cat", "category", prompts["category"])
        + _options("held", "held out for", held_out)
        + f"<label><input type='checkbox' id='changed'> verdict changed vs base ({html.escape(primary)})</label> "
        + "<b id='count'></b>"
    )  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><div class='bar'>{bar}</div>{''.join(sections)}"
        f"<script>{SCRIPT}</script></body></html>"
    )
