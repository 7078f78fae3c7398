"""The adapter canary: before an adapter is evaluated, show that it is applied.

An adapter that is silently not applied answers with the base weights under the adapter's name, and
a served adapter can differ from the one trained. Both give plausible numbers. So each adapter's
next-token distribution on a few fixed prompts is compared with the base model's (it must differ)
and, when an endpoint serves it, with the local PEFT model's (it must agree within a tolerance).

Distances are in nats: the largest log-probability difference over the top tokens of either side. A
token in one side's top-k but not the other's counts by how far it is above the other's k-th token
(a lower bound on its true difference), so the distance never overstates a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ealign_dagster.core.chat import CANARY_PROMPTS

TOP_K = 5
# Local PEFT: a no-op adapter (B = 0) adds zero; two forward passes of the same weights still differ by
# float noise (~1e-6 nats measured on CPU), and a trained adapter moves log-probs by far more.
MIN_EFFECT = 1e-4


def canary_messages() -> list[list[dict]]:
    return [[{"role": "user", "content": p}] for p in CANARY_PROMPTS]


def distance(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """Largest |log p_a - log p_b| over each prompt's top tokens of either side (see the module)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for one, other in ((x, y), (y, x)):
            floor = min(other.values()) if other else float("-inf")
            for tok, lp in one.items():
                d = abs(lp - other[tok]) if tok in other else max(lp - floor, 0.0)
                worst = max(worst, d)
    return worst


@dataclass
class CanaryResult:
    model_id: str
    name: str
    backend: str
    vs_base: float  # distance from the base model as served
    vs_local: float | None  # endpoint: distance from the local PEFT adapter
    local_effect: float | None  # endpoint: the adapter's own effect, local adapter vs local base
    tolerance: float | None
    status: str  # applied | not_applied | differs_from_local | inconclusive

    @property
    def failed(self) -> bool:
        return self.status in ("not_applied", "differs_from_local")

    def message(self) -> str:
        if self.status == "not_applied":
            return (f"adapter {self.name} ({self.model_id}) is not applied: its next-token distribution on the "
                    f"canary prompts equals the base model's (distance {self.vs_base:.2g} nats)")  # fmt: skip
        if self.status == "differs_from_local":
            return (f"adapter {self.name} ({self.model_id}) as served differs from the trained one: distance "
                    f"{self.vs_local:.3g} nats from the local PEFT model on the canary prompts (tolerance "
                    f"{self.tolerance}); re-serve it from the registered path")  # fmt: skip
        if self.status == "inconclusive":
            return (f"adapter {self.name}: the canary cannot tell it from the base (its own effect, "
                    f"{self.local_effect:.3g} nats, is within the tolerance {self.tolerance})")  # fmt: skip
        return f"adapter {self.name}: applied (distance from base {self.vs_base:.3g} nats)"


def check_adapters(chat, models, local=None, tolerance: float = 0.25, log=None) -> list[CanaryResult]:
    """Canary results for every adapter among `models` (ModelUnderTest). `chat` serves the models under
    test; `local`, when given, is the local PEFT model the served adapters must agree with."""
    from ealign_dagster.evaluation.models import attach

    msgs = canary_messages()
    endpoint = local is not None
    base = chat.next_token_logprobs(msgs, TOP_K, adapter=None)
    local_base = local.next_token_logprobs(msgs, TOP_K, adapter=None) if endpoint else None
    out = []
    for mut in models:
        if not mut.adapter_id:
            continue
        attach(chat, mut)
        served = chat.next_token_logprobs(msgs, TOP_K, adapter=mut.name)
        vs_base, vs_local, effect = distance(served, base), None, None
        if endpoint:
            attach(local, mut)
            ref = local.next_token_logprobs(msgs, TOP_K, adapter=mut.name)
            vs_local, effect = distance(served, ref), distance(ref, local_base)
            if vs_local > tolerance:
                status = "differs_from_local"
            elif effect <= tolerance:
                status = "inconclusive"
            else:
                status = "applied"
        else:
            status = "applied" if vs_base > MIN_EFFECT else "not_applied"
        r = CanaryResult(mut.model_id, mut.name, "openai" if endpoint else "local", vs_base, vs_local, effect,
                         tolerance if endpoint else None, status)  # fmt: skip
        if log:
            log(r.message())
        out.append(r)
    return out


def canary_table(results: list[CanaryResult]) -> pl.DataFrame:
    schema = {"model_id": pl.String, "name": pl.String, "backend": pl.String, "vs_base": pl.Float64,
              "vs_local": pl.Float64, "local_effect": pl.Float64, "tolerance": pl.Float64, "status": pl.String}  # fmt: skip
    return pl.DataFrame([{k: getattr(r, k) for k in schema} for r in results], schema=schema).with_columns(
        prompts=pl.lit(len(CANARY_PROMPTS)), top_k=pl.lit(TOP_K)
    )
