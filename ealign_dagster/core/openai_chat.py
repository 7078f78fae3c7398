"""The OpenAI-compatible backend of the chat layer (vLLM, llama.cpp, OpenAI): bounded concurrency,
the client's retries, one clear line for an endpoint's refusal."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from ealign_dagster.core.chat import EndpointError, GenerationCache, Request, Result
from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.paths import Home

if TYPE_CHECKING:
    import numpy as np


TOP_LOGPROBS = 20  # the most that vLLM and OpenAI return


class OpenAIChat:
    """Any OpenAI-compatible endpoint. The client retries 429, 5xx and timeouts with exponential
    backoff and jitter (max_retries); other 4xx answers stop the run with the endpoint's message."""

    def __init__(self, cfg: ModelConfig, home: Home, say=None):
        import httpx
        import openai

        if not cfg.base_url:
            raise ValueError(f"model '{cfg.model}': backend openai needs base_url")
        self.cfg = cfg
        self.say = say or (lambda line: print(f"ealign: {line}", file=sys.stderr, flush=True))
        self.cache = GenerationCache(home.cache / "generations.sqlite")
        self.client = openai.OpenAI(
            base_url=cfg.base_url,
            api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
            http_client=httpx.Client(event_hooks={"response": [self._on_response]}),
        )
        self._fingerprints: dict[str, str] = {}

    def _on_response(self, response) -> None:
        """Say each answer the client will retry (429, 5xx), with the attempt, and when retries run out."""
        if response.status_code != 429 and response.status_code < 500:
            return
        attempt = int(response.request.headers.get("x-stainless-retry-count", "0")) + 1
        model = json.loads(response.request.content or b"{}").get("model", self.cfg.model)
        left = self.cfg.max_retries - attempt + 1
        then = f"retry {attempt}/{self.cfg.max_retries}" if left > 0 else "retries exhausted"
        self.say(f"{self.cfg.base_url} (model {model}): HTTP {response.status_code}, {then}")

    def _create(self, model: str, **kw):
        """One chat completion; an endpoint's refusal, a timeout or a lost connection as one line."""
        import openai

        try:
            return self.client.chat.completions.create(model=model, **kw)
        except openai.APIStatusError as e:
            raise EndpointError(f"{self.cfg.base_url} (model {model}): HTTP {e.status_code}: {e.message}") from None
        except openai.APITimeoutError:
            raise EndpointError(
                f"{self.cfg.base_url}: timed out after {self.cfg.timeout_s}s and {self.cfg.max_retries} retries"
            ) from None
        except openai.APIConnectionError as e:
            raise EndpointError(f"{self.cfg.base_url}: cannot connect ({e.__cause__ or e})") from None
        except (ValueError, openai.APIResponseValidationError) as e:  # not JSON, or not a chat completion
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EndpointError(f"{self.cfg.base_url} (model {model}): malformed reply ({first})") from None

    @property
    def version(self) -> str:
        """What the cache keys the base model's answers on (see served_version)."""
        return self.served_version(None)

    def served_version(self, adapter: str | None) -> str:
        """The endpoint, the model name and a fingerprint of what is served under it now: a hash of its
        greedy answers to the canary prompts, asked afresh once per process, never from the cache. A
        changed or re-served model answers differently, so its cache keys change and it is asked again
        (a scheduled re-evaluation re-asks exactly when the served model changed)."""
        from ealign_dagster.core.chat import CANARY_PROMPTS
        from ealign_dagster.core.paths import value_version

        model = adapter or self.cfg.model
        if model not in self._fingerprints:
            answers = [
                self._create(model, messages=[{"role": "user", "content": p}], max_tokens=16, temperature=0.0, seed=0)
                .choices[0].message.content
                for p in CANARY_PROMPTS
            ]  # fmt: skip
            self._fingerprints[model] = value_version(answers)[:12]
        return f"openai:{self.cfg.base_url}:{model}:{self._fingerprints[model]}"

    def _one(self, req: Request) -> Result:
        resp = self._create(req.adapter or self.cfg.model, messages=req.as_messages(), max_tokens=req.max_new_tokens,
                            temperature=req.temperature, top_p=req.top_p, seed=req.seed)  # fmt: skip
        usage = resp.usage
        text = (resp.choices[0].message.content or "").strip()
        return Result(text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)

    def _top(self, messages: list[dict], model: str, k: int) -> list[tuple[str, float]]:
        """The endpoint's top-k (token, log-prob) for the first reply token."""
        resp = self._create(model, messages=messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k)
        content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
        if not content:
            raise EndpointError(f"{self.cfg.base_url}: no logprobs in the reply; the endpoint must support logprobs")
        return [(t.token, t.logprob) for t in content[0].top_logprobs]

    def next_token_logprobs(
        self, prompts: list[list[dict]], k: int = 5, adapter: str | None = None, batch_size: int = 16
    ) -> list[dict[str, float]]:
        """{token: log-prob} of the k most likely first reply tokens after each prompt."""
        import numpy as np

        def one(messages):
            d: dict[str, float] = {}
            for t, lp in self._top(messages, adapter or self.cfg.model, k):
                d[t] = float(np.logaddexp(d[t], lp)) if t in d else lp
            return d

        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            return list(pool.map(one, prompts))

    def generate_batches(self, reqs: list[Request], every: float = 30.0) -> Iterator[tuple[list[int], list[Result]]]:
        """Answers as they complete; while none completes, a line every `every` seconds."""
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(reqs)}
            pending, start = set(futures), time.monotonic()
            try:
                while pending:
                    done, pending = wait(pending, timeout=every, return_when=FIRST_COMPLETED)
                    if not done:
                        self.say(f"{self.cfg.base_url} (model {self.cfg.model}): waiting for {len(pending)} answers, "
                                 f"{time.monotonic() - start:.0f} s so far")  # fmt: skip
                    for f in done:
                        yield [futures[f]], [f.result()]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def option_logprobs(
        self,
        prompts: list[list[dict]],
        options: list[str],
        batch_size: int = 16,
        adapter: str | None = None,
        log=None,
    ) -> np.ndarray:
        """Log-probability of each option as the first reply token, from the endpoint's top log-
        probabilities (vLLM and OpenAI return up to 20). Every spelling of an option among them ("4",
        " 4", "4\n": equal once stripped) counts: their probabilities add up. An option outside them gets
        -inf; a prompt with every option outside them is a row of -inf (no mass), and `log` is told
        once per call how many there were."""
        import numpy as np

        def one(messages):
            row = np.full(len(options), -np.inf)
            for token, lp in self._top(messages, adapter or self.cfg.model, TOP_LOGPROBS):
                if token.strip() in options:
                    k = options.index(token.strip())
                    row[k] = np.logaddexp(row[k], lp)
            return row

        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            out = np.array(list(pool.map(one, prompts)), dtype=float).reshape(len(prompts), len(options))
        missed = int(np.isneginf(out).all(axis=1).sum()) if options else 0
        if missed and log:
            log(
                f"option log-probabilities ({adapter or self.cfg.model}): {missed}/{len(prompts)} prompts had none "
                f"of the options {options} in the endpoint's top {TOP_LOGPROBS} (no option mass)"
            )
        return out
