"""The OpenAI-compatible backend of the chat layer (vLLM, llama.cpp, OpenAI): bounded concurrency,
the client's retries, one clear line for an endpoint's refusal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING

from ealign_dagster.core.chat import EndpointError, GenerationCache, Request, Result
from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.paths import Home

if TYPE_CHECKING:
    import numpy as np


class OpenAIChat:
    """Any OpenAI-compatible endpoint. The client retries 429, 5xx and timeouts with exponential
    backoff and jitter (max_retries); other 4xx answers stop the run with the endpoint's message."""

    def __init__(self, cfg: ModelConfig, home: Home):
        import openai

        if not cfg.base_url:
            raise ValueError(f"model '{cfg.model}': backend openai needs base_url")
        self.cfg = cfg
        self.cache = GenerationCache(home.cache / "generations.sqlite")
        self.client = openai.OpenAI(
            base_url=cfg.base_url,
            api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
        self.version = f"openai:{cfg.base_url}:{cfg.model}"

    def _one(self, req: Request) -> Result:
        import openai

        try:
            resp = self.client.chat.completions.create(
                model=req.adapter or self.cfg.model,
                messages=req.as_messages(),
                max_tokens=req.max_new_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                seed=req.seed,
            )
        except openai.APIStatusError as e:
            raise EndpointError(
                f"{self.cfg.base_url} (model {req.adapter or self.cfg.model}): HTTP {e.status_code}: {e.message}"
            ) from None
        except openai.APITimeoutError:
            raise EndpointError(
                f"{self.cfg.base_url}: timed out after {self.cfg.timeout_s}s and {self.cfg.max_retries} retries"
            ) from None
        except openai.APIConnectionError as e:
            raise EndpointError(f"{self.cfg.base_url}: cannot connect ({e.__cause__ or e})") from None
        usage = resp.usage
        text = (resp.choices[0].message.content or "").strip()
        return Result(text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)

    def generate_batches(self, reqs: list[Request]) -> Iterator[tuple[list[int], list[Result]]]:
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(reqs)}
            try:
                for f in as_completed(futures):
                    yield [futures[f]], [f.result()]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def option_logprobs(
        self, prompts: list[list[dict]], options: list[str], batch_size: int = 16, adapter: str | None = None
    ) -> np.ndarray:
        """Log-probability of each option as the first reply token, from the endpoint's top
        log-probabilities (vLLM and OpenAI return up to 20); an option outside them gets -inf."""
        import numpy as np
        import openai

        def one(messages):
            try:
                resp = self.client.chat.completions.create(
                    model=adapter or self.cfg.model,
                    messages=messages,
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=True,
                    top_logprobs=20,
                )
            except openai.APIStatusError as e:
                raise EndpointError(
                    f"{self.cfg.base_url} (model {adapter or self.cfg.model}): HTTP {e.status_code}: {e.message}"
                ) from None
            content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
            if not content:
                raise EndpointError(
                    f"{self.cfg.base_url}: no logprobs in the reply; the endpoint must support logprobs"
                )
            top = {t.token.strip(): t.logprob for t in content[0].top_logprobs}
            return [top.get(o, -np.inf) for o in options]

        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            return np.array(list(pool.map(one, prompts)), dtype=float).reshape(len(prompts), len(options))
