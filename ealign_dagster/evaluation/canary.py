"""The adapter canary: before an adapter is evaluated, show that it is applied.

An adapter that is silently not applied answers with the base weights under the adapter's name, and
a served adapter can differ from the one trained. Both give plausible numbers. So each adapter's
next-token distribution on a few fixed prompts is compared with the base model's (it must differ)
and, when an endpoint serves it, with the local PEFT model's (it must agree within a tolerance). A
served adapter that disagrees is also compared with every other local adapter and the local base, so
the failure says whether the endpoint serves another adapter's weights under its name (two names
swapped: each names the other) or does not apply it at all.

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
    endpoint: str | None = None  # the endpoint's base_url
    # differs_from_local: the closest local model it answers like instead (within the tolerance):
    # (name, model_id, distance); ("base", "base", d) for the base weights. None when it matches none.
    like: tuple[str, str, float] | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("not_applied", "differs_from_local")

    def message(self) -> str:
        """One line; an endpoint's failures name the endpoint, the adapter and what it answers like."""
        if self.status == "not_applied":
            return (f"adapter {self.name} ({self.model_id}) is not applied: its next-token distribution on the "
                    f"canary prompts equals the base model's (distance {self.vs_base:.2g} nats)")  # fmt: skip
        served = f"adapter {self.name} ({self.model_id}) served by {self.endpoint}"
        if self.status == "differs_from_local" and self.like and self.like[0] == "base":
            return (f"{served} answers like the base model, not like the trained adapter ({self.like[2]:.2g} vs "
                    f"{self.vs_local:.3g} nats on the canary prompts, tolerance {self.tolerance}): the endpoint does "
                    f"not apply it; serve it with --enable-lora from the registered path")  # fmt: skip
        if self.status == "differs_from_local" and self.like:
            other = f"{self.like[0]} ({self.like[1]})"
            return (f"{served} answers like the local adapter {other}, not like itself ({self.like[2]:.2g} vs "
                    f"{self.vs_local:.3g} nats on the canary prompts, tolerance {self.tolerance}): the endpoint serves "
                    f"{self.like[0]}'s weights under this name; re-serve it from the registered path")  # fmt: skip
        if self.status == "differs_from_local":
            return (f"{served} differs from the trained one: distance {self.vs_local:.3g} nats from the local PEFT "
                    f"model on the canary prompts (tolerance {self.tolerance}), and it answers like no other local "
                    f"adapter nor the base; re-serve it from the registered path")  # fmt: skip
        if self.status == "inconclusive":
            return (f"adapter {self.name}: the canary cannot tell it from the base (its own effect, "
                    f"{self.local_effect:.3g} nats, is within the tolerance {self.tolerance})")  # fmt: skip
        return f"adapter {self.name}: applied (distance from base {self.vs_base:.3g} nats)"


def check_adapters(chat, models, local=None, tolerance: float = 0.25, log=None) -> list[CanaryResult]:
    """Canary results for every adapter among `models` (ModelUnderTest). `chat` serves the models under
    test; `local`, when given, is the local PEFT model the served adapters must agree with. A served
    adapter that differs from its own local weights is compared with every other local adapter and the
    base, so that a swap of names or an adapter the endpoint does not apply is named as such."""
    from ealign_dagster.evaluation.models import attach

    msgs = canary_messages()
    endpoint = local is not None
    adapters = [m for m in models if m.adapter_id]
    base = chat.next_token_logprobs(msgs, TOP_K, adapter=None)
    refs: dict[str | None, list[dict[str, float]]] = {}
    if endpoint:
        refs[None] = local.next_token_logprobs(msgs, TOP_K, adapter=None)
        for mut in adapters:
            attach(local, mut)
            refs[mut.name] = local.next_token_logprobs(msgs, TOP_K, adapter=mut.name)
    ids = {m.name: m.model_id for m in adapters} | {None: "base"}
    out = []
    for mut in adapters:
        attach(chat, mut)
        served = chat.next_token_logprobs(msgs, TOP_K, adapter=mut.name)
        vs_base, vs_local, effect, like = distance(served, base), None, None, None
        if endpoint:
            vs_local, effect = distance(served, refs[mut.name]), distance(refs[mut.name], refs[None])
            if vs_local > tolerance:
                status = "differs_from_local"
                near = sorted((distance(served, ref), name is None, name) for name, ref in refs.items()
                              if name != mut.name)  # fmt: skip
                if near and near[0][0] <= tolerance:
                    d, _, name = near[0]
                    like = ("base" if name is None else name, ids[name], d)
            elif effect <= tolerance:
                status = "inconclusive"
            else:
                status = "applied"
        else:
            status = "applied" if vs_base > MIN_EFFECT else "not_applied"
        r = CanaryResult(mut.model_id, mut.name, "openai" if endpoint else "local", vs_base, vs_local, effect,
                         tolerance if endpoint else None, status, getattr(chat.cfg, "base_url", None) if endpoint
                         else None, like)  # fmt: skip
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
