"""Sampling whose draws depend on each request alone, never on what shares its batch: temperature
and top-p warpers, then Gumbel noise from one generator per request."""

from __future__ import annotations

from ealign_dagster.core.paths import stable_int


def sampler(temperature: float, top_p: float, reqs: list, device: str):
    """Temperature, top-p, then Gumbel noise from one generator per row seeded by its request (seed and
    messages): greedy decoding (argmax) then picks an exact sample, whatever else shares the batch."""
    from transformers.generation.logits_process import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    procs = [TemperatureLogitsWarper(float(temperature))] + ([TopPLogitsWarper(float(top_p))] if top_p < 1 else [])
    return LogitsProcessorList([*procs, _GumbelMax([stable_int(r.seed, r.messages) for r in reqs], device)])


class _GumbelMax:
    """Adds -log(Exp(1)) noise (Gumbel); argmax(scores + noise) is a sample of softmax(scores). Each
    row draws once per step from its own generator, so its noise depends on its seed and step alone."""

    def __init__(self, seeds: list[int], device: str):
        import torch

        self.generators = [torch.Generator(device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        noise = torch.empty(scores.shape, dtype=torch.float32, device=scores.device)
        for row, g in zip(noise, self.generators):
            row.exponential_(generator=g)
        # a draw of exactly 0 would give +inf noise (and nan on a top-p-filtered -inf)
        return scores - noise.clamp_(min=torch.finfo(noise.dtype).tiny).log_().to(scores.dtype)
