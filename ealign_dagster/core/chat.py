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
from ealign_dagster.core.paths import Home
from ealign_dagster.core.sampling import sampler

if TYPE_CHECKING:
    import numpy as np


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


class LocalChat:
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
            version = weights_version(Path(self.path)) if Path(self.path).is_dir() else self.path
            self._loaded[key] = {"tokenizer": tok, "model": model, "version": version, "adapters": {}}
        self.state = self._loaded[key]  # shared: every LocalChat of this model sees attached adapters
        self.tokenizer, self.version = self.state["tokenizer"], self.state["version"]

    @property
    def model(self):
        return self.state["model"]

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
        """Yield (indices, results) per batch; batches share sampling params and similar lengths."""
        import torch

        lengths = [
            len(self.tokenizer.apply_chat_template(r.as_messages(), add_generation_prompt=True, tokenize=False))
            for r in reqs
        ]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(reqs):
            groups.setdefault((r.max_new_tokens, r.temperature, r.top_p, r.adapter), []).append(i)
        eos = self.tokenizer.eos_token_id
        for (max_new, temp, top_p, adapter), idx in groups.items():
            self.activate(adapter)
            idx = sorted(idx, key=lambda i: lengths[i])
            for b in range(0, len(idx), self.cfg.batch_size):
                batch = idx[b : b + self.cfg.batch_size]
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
                    )
                new = out[:, ids.shape[1] :].tolist()
                results = []
                for j, row in enumerate(new):
                    n = row.index(eos) if eos in row else len(row)
                    text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                    results.append(Result(text, int(mask[j].sum()), n))
                yield batch, results

    def _batch_inputs(self, reqs: list[Request], adapter: str | None):
        """Token ids, attention mask and a prefilled cache for one batch.

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
        if not self.cfg.prefix_cache_min_tokens or shared < self.cfg.prefix_cache_min_tokens:
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

    def logprobs(
        self, prompts: list[list[dict]], completions: list[str], batch_size: int = 8, adapter: str | None = None
    ) -> list[float]:
        """Sum of log-probabilities of each completion after its chat prompt."""
        import torch

        self.activate(adapter)
        out = []
        for b in range(0, len(prompts), batch_size):
            heads = [
                self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                for p in prompts[b : b + batch_size]
            ]
            head_ids = [self.tokenizer(h, add_special_tokens=False)["input_ids"] for h in heads]
            tail_ids = [
                self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions[b : b + batch_size]
            ]
            seqs = [h + t for h, t in zip(head_ids, tail_ids)]
            width = max(map(len, seqs))
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            for j, (h, t) in enumerate(zip(head_ids, tail_ids)):
                out.append(float(logp[j, len(h) - 1 : len(h) - 1 + len(t)].sum()))
        return out

    def option_logprobs(
        self, prompts: list[list[dict]], options: list[str], batch_size: int = 16, adapter: str | None = None, log=None
    ) -> np.ndarray:
        """Log-probability of each option as the reply's start, one row per prompt: the sum over all its tokens
        after the chat prompt (SentencePiece spells "4" as '▁' '4': first tokens alike). Per batch, one prefill of
        the left-padded prompts; longer options go on from a copy of its cache. `log`: unused (the endpoint's)."""
        import numpy as np
        import torch

        self.activate(adapter)
        pad, out = self.tokenizer.pad_token_id, []
        for b in range(0, len(prompts), batch_size):
            heads = [
                self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                for p in prompts[b : b + batch_size]
            ]
            head_ids = [self.tokenizer(h, add_special_tokens=False)["input_ids"] for h in heads]
            tails = [self._option_tokens(h, hi, options) for h, hi in zip(heads, head_ids)]  # [row][option]
            width, n = max(map(len, head_ids)), len(heads)
            ids = torch.tensor([[pad] * (width - len(s)) + s for s in head_ids], device=self.device)
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in head_ids], device=self.device)
            scores = torch.zeros(n, len(options), device=self.device)
            with torch.inference_mode():
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                prefill = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
                )
                first = torch.log_softmax(prefill.logits[:, -1].float(), dim=-1)
                for k in range(len(options)):
                    m = max(len(t[k]) for t in tails)  # option k's tokens, right-padded
                    opt = torch.tensor([t[k] + [pad] * (m - len(t[k])) for t in tails], device=self.device)
                    scores[:, k] = first.gather(-1, opt[:, :1])[:, 0]
                    if m == 1:
                        continue
                    # feed all tokens but the last: position j predicts token j + 1
                    fed = torch.tensor([[1] * (len(t[k]) - 1) + [0] * (m - len(t[k])) for t in tails]).to(opt)
                    logits = self.model(
                        input_ids=opt[:, :-1],
                        attention_mask=torch.cat([mask, fed], dim=1),
                        position_ids=mask.sum(-1, keepdim=True) + torch.arange(m - 1, device=self.device),
                        cache=copy.deepcopy(prefill.cache),
                    ).logits
                    lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, opt[:, 1:, None])[..., 0]
                    scores[:, k] += (lp * fed).sum(-1)
            out.append(scores.cpu().numpy().astype(float))
        return np.concatenate(out) if out else np.zeros((0, len(options)))

    def next_token_logprobs(
        self, prompts: list[list[dict]], k: int = 5, adapter: str | None = None, batch_size: int = 16
    ) -> list[dict[str, float]]:
        """The k most likely first reply tokens after each chat prompt, as {decoded token: log-prob}
        (what an endpoint's top_logprobs return): one left-padded forward pass per batch."""
        import numpy as np
        import torch

        self.activate(adapter)
        pad, out = self.tokenizer.pad_token_id, []
        for b in range(0, len(prompts), batch_size):
            rows = [self.tokenizer(self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False),
                                   add_special_tokens=False)["input_ids"] for p in prompts[b : b + batch_size]]  # fmt: skip
            width = max(map(len, rows))
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
            with torch.inference_mode():
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = (
                    self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
                    .logits[:, -1]
                    .float()
                )
            top = torch.log_softmax(logits, dim=-1).topk(k, dim=-1)
            for values, idx in zip(top.values.tolist(), top.indices.tolist()):
                d: dict[str, float] = {}
                for v, i in zip(values, idx):  # two ids can decode alike: their probabilities add
                    t = self.tokenizer.decode([i])
                    d[t] = float(np.logaddexp(d[t], v)) if t in d else v
                out.append(d)
        return out

    def _option_tokens(self, head: str, head_ids: list[int], options: list[str]) -> list[list[int]]:
        """Each option's tokens after a chat prompt: those of prompt + option past the prompt's own or,
        where the two merge at the seam, the option's alone (as `logprobs` takes completions)."""
        full = self.tokenizer([head + o for o in options], add_special_tokens=False)["input_ids"]
        alone = self.tokenizer(options, add_special_tokens=False)["input_ids"]
        tails = [f[len(head_ids) :] if f[: len(head_ids)] == head_ids else a for f, a in zip(full, alone)]
        seen: dict[tuple[int, ...], str] = {}
        for o, t in zip(options, tails):
            if not t or tuple(t) in seen:
                raise ValueError(
                    f"options {seen.get(tuple(t), '')!r} and {o!r} are the same tokens {t} after the chat prompt "
                    f"under tokenizer {self.tokenizer.name_or_path}: their log-probabilities cannot be told apart"
                )
            seen[tuple(t)] = o
        return tails


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
    key_version: str | None = None,
) -> list[Result]:
    """Results for every request: cache hits first, the rest generated, each batch persisted at once.
    key_version: what the cache keys on instead of the model version (e.g. base + adapter checksum,
    so a retrained adapter under the same name never reuses old answers)."""
    cache = cache or chat.cache
    keys = [GenerationCache.key(key_version or chat.version, r) for r in reqs]
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
