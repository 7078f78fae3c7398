"""One chat-model layer, two backends (local transformers, OpenAI-compatible endpoints), one cache.

Every generation is keyed by (model version, adapter, messages, sampling params, seed) and persisted
as soon as its batch finishes, so re-running generates nothing new and an interrupted run resumes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ealign_dagster.core.cache import GenerationCache
from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.logprobs import LocalScoring
from ealign_dagster.core.paths import Home
from ealign_dagster.core.sampling import sampler

if TYPE_CHECKING:
    pass


# Fixed prompts whose answers identify a model: the endpoint fingerprint and the adapter canary.
CANARY_PROMPTS = (
    "Complete the sentence: The capital of France is",
    "Is it ever right to break a promise? Answer in one sentence.",
    "Write one line of a poem about the sea.",
    "How do I boil an egg?",
)


@dataclass(frozen=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_new_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    adapter: str | None = None

    @staticmethod
    def chat(messages: list[dict], **kw) -> Request:
        return Request(tuple((m["role"], m["content"]) for m in messages), **kw)

    def as_messages(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class Result:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


class EndpointError(RuntimeError):
    """A non-retryable answer from an OpenAI-compatible endpoint."""


class LocalChat(LocalScoring):
    """transformers backend: the model loads once per process; batched, length-sorted, left-padded
    generation; PEFT adapters attached and switched without reloading the base."""

    _loaded: dict[tuple[str, str], tuple] = {}

    def __init__(self, cfg: ModelConfig, home: Home):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ealign_dagster.core.models import resolve, weights_version

        self.cfg = cfg
        self.cache = GenerationCache(home.cache / "generations.sqlite")
        self.path = resolve(cfg.model, home.models)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(cfg.dtype)
        if (
            dtype is None
        ):  # auto: bf16 on CUDA; fp32 on CPU (benchmarks/generation.py, 2 cores: bf16 29 vs fp32 66 tok/s)
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        key = (self.path, str(dtype))
        if key not in self._loaded:
            tok = AutoTokenizer.from_pretrained(self.path)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(self.device).eval()
            # Frozen, as PEFT leaves it once an adapter is attached: torch computes the output layer with a
            # trainable weight another way, and the base's log-probabilities would move in their 7th digit.
            model.requires_grad_(False)
            version = weights_version(Path(self.path)) if Path(self.path).is_dir() else self.path
            self._loaded[key] = {"tokenizer": tok, "model": model, "version": version, "adapters": {}}
        self.state = self._loaded[key]  # shared: every LocalChat of this model sees attached adapters
        self.tokenizer, self.version = self.state["tokenizer"], self.state["version"]

    @property
    def model(self):
        return self.state["model"]

    @property
    def batching(self) -> str:
        """How calls over several adapters run (ModelConfig.adapter_batching, auto resolved)."""
        mode = self.cfg.adapter_batching
        return ("mixed" if self.device == "cuda" else "switch") if mode == "auto" else mode

    def attach(self, name: str, path: str) -> None:
        """Load a PEFT adapter next to the base weights (once); the base is not reloaded."""
        adapters = self.state["adapters"]
        if adapters.get(name) == path:
            return
        from peft import PeftModel

        self.state.pop("prefix", None)  # a cached prefix may hold the old weights under this name
        if not adapters:
            self.state["model"] = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
        else:
            if name in adapters:
                self.model.delete_adapter(name)
            self.model.load_adapter(path, adapter_name=name)
        adapters[name] = path

    def activate(self, name: str | None) -> None:
        """Switch to an attached adapter, or to the base model (None)."""
        adapters = self.state["adapters"]
        if name is None:
            if adapters:
                self.model.base_model.disable_adapter_layers()
            return
        if name not in adapters:
            raise KeyError(f"adapter '{name}' is not attached to {self.cfg.model}")
        self.model.base_model.enable_adapter_layers()
        self.model.set_adapter(name)

    def generate_batches(self, reqs: list[Request]) -> Iterator[tuple[list[int], list[Result]]]:
        """Yield (indices, results) per batch; batches share sampling params and similar lengths, and
        one adapter unless `adapter_batching` is mixed (then each row runs its own, PEFT adapter_names)."""
        import torch

        lengths = [
            len(self.tokenizer.apply_chat_template(r.as_messages(), add_generation_prompt=True, tokenize=False))
            for r in reqs
        ]
        mixed = self.batching == "mixed" and bool(self.state["adapters"])
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(reqs):
            groups.setdefault((r.max_new_tokens, r.temperature, r.top_p, None if mixed else r.adapter), []).append(i)
        eos = self.tokenizer.eos_token_id
        for (max_new, temp, top_p, _), idx in groups.items():
            # rows under one system prompt (a persona) together, so that a batch shares its prefix
            idx = sorted(idx, key=lambda i: (_system(reqs[i]), lengths[i], reqs[i].adapter or ""))
            for b in range(0, len(idx), self.cfg.batch_size):
                batch = idx[b : b + self.cfg.batch_size]
                names = {reqs[i].adapter for i in batch}
                extra = {}
                if len(names) == 1:
                    self.activate(next(iter(names)))
                else:  # rows of several adapters: LoRA layers on, each row its own (base rows: none)
                    self.model.base_model.enable_adapter_layers()
                    extra["adapter_names"] = [reqs[i].adapter or "__base__" for i in batch]
                adapter = next(iter(names)) if len(names) == 1 else False  # False: no shared prefix
                ids, mask, past = self._batch_inputs([reqs[i] for i in batch], adapter)
                procs = sampler(temp, top_p, [reqs[i] for i in batch], self.device) if temp > 0 else None
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        cache=past,
                        max_new_tokens=max_new,
                        do_sample=False,  # greedy, or sampled by _sampler's per-request noise
                        logits_processor=procs,
                        pad_token_id=self.tokenizer.pad_token_id,
                        **extra,
                    )
                new = out[:, ids.shape[1] :].tolist()
                results = []
                for j, row in enumerate(new):
                    n = row.index(eos) if eos in row else len(row)
                    text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                    results.append(Result(text, int(mask[j].sum()), n))
                yield batch, results

    def _batch_inputs(self, reqs: list[Request], adapter: str | None | bool):
        """Token ids, attention mask and a prefilled cache for one batch (adapter False: rows of several
        adapters, whose prefixes differ, so none is shared).

        Rows that share a long prefix (system prompt and few-shot exemplars: every CAI request of a
        constitution) are laid out as [prefix][padding][own tokens]; the prefix's keys and values are
        computed once and reused, so each row only pays for its own tokens. Positions come from the
        attention mask, so the padding in the middle changes nothing. Without a shared prefix the
        rows are simply left-padded."""
        import torch

        rows = [
            self.tokenizer(
                self.tokenizer.apply_chat_template(r.as_messages(), add_generation_prompt=True, tokenize=False),
                add_special_tokens=False,
            )["input_ids"]
            for r in reqs
        ]
        shared = min(len(r) for r in rows) - 1  # every row keeps at least one token of its own
        for k in range(shared):
            if any(r[k] != rows[0][k] for r in rows):
                shared = k
                break
        if adapter is False or not self.cfg.prefix_cache_min_tokens or shared < self.cfg.prefix_cache_min_tokens:
            shared = 0
        pad = self.tokenizer.pad_token_id
        width = max(len(r) - shared for r in rows)
        ids = [r[:shared] + [pad] * (width - len(r) + shared) + r[shared:] for r in rows]
        mask = [[1] * shared + [0] * (width - len(r) + shared) + [1] * (len(r) - shared) for r in rows]
        ids = torch.tensor(ids, device=self.device)
        mask = torch.tensor(mask, device=self.device)
        if not shared:
            return ids, mask, None
        key = (adapter, tuple(rows[0][:shared]))
        if self.state.get("prefix", (None,))[0] != key:
            with torch.inference_mode():
                cache = self.model(input_ids=ids[:1, :shared], use_cache=True, logits_to_keep=1).cache
            self.state["prefix"] = (key, cache)
        past = copy.deepcopy(self.state["prefix"][1])
        past.batch_repeat_interleave(len(rows))
        return ids, mask, past


def _system(req: Request) -> str:
    return req.messages[0][1] if req.messages and req.messages[0][0] == "system" else ""


def load_chat(cfg: ModelConfig, home: Home):
    """The chat model a config names; its generation cache lives in the home."""
    if cfg.backend == "openai":
        from ealign_dagster.core.openai_chat import OpenAIChat

        return OpenAIChat(cfg, home)
    return LocalChat(cfg, home)


def generate(
    chat,
    reqs: list[Request],
    cache: GenerationCache | None = None,
    log=None,
    what: str = "rows",
    key_version: str | list[str] | None = None,
) -> list[Result]:
    """Results for every request: cache hits first, the rest generated, each batch persisted at once.
    key_version: what the cache keys on instead of the model version (e.g. base + adapter checksum,
    so a retrained adapter under the same name never reuses old answers); one per request when the
    requests are for several models."""
    cache = cache or chat.cache
    versions = key_version if isinstance(key_version, list) else [key_version] * len(reqs)
    keys = [GenerationCache.key(v or chat.version, r) for v, r in zip(versions, reqs, strict=True)]
    found = cache.get_many(list(set(keys)))
    results: list[Result | None] = [found.get(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    waiting: dict[str, list[int]] = {}
    for i in todo:
        waiting.setdefault(keys[i], []).append(i)
    firsts = [ids[0] for ids in waiting.values()]
    if log:
        log(f"{what}: {len(reqs) - len(todo)}/{len(reqs)} from cache, generating {len(firsts)}")
    start, done, tokens = time.perf_counter(), 0, 0
    for batch, outs in chat.generate_batches([reqs[i] for i in firsts]):
        cache.put_many([(keys[firsts[j]], r) for j, r in zip(batch, outs)])
        for j, r in zip(batch, outs):
            for i in waiting[keys[firsts[j]]]:
                results[i] = r
        done += len(batch)
        tokens += sum(r.completion_tokens for r in outs)
        if log:
            el = time.perf_counter() - start
            eta = el / done * (len(firsts) - done)
            log(f"{what}: {done}/{len(firsts)} generated, {tokens / max(el, 1e-9):.1f} tok/s, ETA {eta:.0f}s")
    return results
