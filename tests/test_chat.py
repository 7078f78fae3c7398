"""The chat layer: the openai backend over a real socket, the local backend on the tiny model, the cache."""

import pytest

from ealign_dagster.core.chat import EndpointError, GenerationCache, Request, generate
from ealign_dagster.core.config import ModelConfig
from ealign_dagster.core.openai_chat import OpenAIChat
from tests.fake_endpoint import Endpoint


def _reqs(n, **kw):
    return [Request.chat([{"role": "user", "content": f"question {i}"}], **kw) for i in range(n)]


def _chat(url, paths, **kw):
    return OpenAIChat(ModelConfig(backend="openai", model="teacher-x", base_url=url, **kw), paths)


def test_openai_backend_bounded_concurrency_and_cache(paths):
    with Endpoint() as ep:
        chat = _chat(ep.url, paths, max_concurrency=2)
        cache = chat.cache
        out = generate(chat, _reqs(6, seed=3), cache)
        assert [r.text for r in out] == [f"reply to: question {i}" for i in range(6)]
        assert len(ep.requests) == 6 and ep.max_in_flight == 2
        assert ep.requests[0]["seed"] == 3 and ep.requests[0]["model"] == "teacher-x"
        again = generate(chat, _reqs(6, seed=3), cache)
        assert len(ep.requests) == 6 and all(r.cached for r in again)  # nothing paid twice
        generate(chat, _reqs(6, seed=4), cache)  # another seed is another generation
        assert len(ep.requests) == 12


def test_openai_backend_retries_429_and_5xx(paths):
    with Endpoint() as ep:
        ep.script = [429, 429, 500, 200]
        out = generate(_chat(ep.url, paths, max_retries=5), _reqs(1))
        assert out[0].text == "reply to: question 0" and len(ep.requests) == 4


def test_openai_backend_gives_up_after_retries(paths):
    with Endpoint() as ep:
        ep.script = [500, 500, 500]
        with pytest.raises(EndpointError, match="HTTP 500"):
            generate(_chat(ep.url, paths, max_retries=2), _reqs(1))
        assert len(ep.requests) == 3


def test_openai_backend_timeout(paths):
    with Endpoint() as ep:
        ep.script = [("sleep", 1.5), ("sleep", 1.5)]
        with pytest.raises(EndpointError, match="timed out"):
            generate(_chat(ep.url, paths, timeout_s=0.3, max_retries=1), _reqs(1))
        assert len(ep.requests) == 2


def test_openai_backend_client_error_is_clear_and_not_retried(paths):
    with Endpoint() as ep:
        ep.script = [404]
        with pytest.raises(EndpointError, match=r"HTTP 404: .*model 'teacher-x' not found"):
            generate(_chat(ep.url, paths, max_retries=5), _reqs(1))
        assert len(ep.requests) == 1


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):

    from ealign_dagster.core import models
    from ealign_dagster.core.chat import LocalChat
    from ealign_dagster.core.paths import Home

    home = Home.at(tmp_path_factory.mktemp("tinyhome"))
    models.build(models.TINY, home.models)
    chat = LocalChat(ModelConfig(model=models.TINY, batch_size=4), home)
    chat.home = home
    return chat


def test_local_backend_seeded_sampling_is_reproducible(tiny_chat, tmp_path):
    reqs = _reqs(6, max_new_tokens=8, temperature=1.0, seed=1)
    a = generate(tiny_chat, reqs, GenerationCache(tmp_path / "a.sqlite"))
    b = generate(tiny_chat, reqs, GenerationCache(tmp_path / "b.sqlite"))
    assert [r.text for r in a] == [r.text for r in b]
    assert all(0 < r.completion_tokens <= 8 and r.prompt_tokens > 0 for r in a)
    assert len({r.text for r in a}) == 6
    c = generate(tiny_chat, _reqs(6, max_new_tokens=8, temperature=1.0, seed=2), GenerationCache(tmp_path / "c.sqlite"))
    assert [r.text for r in c] != [r.text for r in a]


def test_logprobs_batched_equal_one_at_a_time(tiny_chat):
    prompts = [[{"role": "user", "content": q}] for q in ("hi", "a much longer question about the weather today", "ok")]
    completions = ["Strongly agree", "I think that the answer is no", "Disagree"]
    batched = tiny_chat.logprobs(prompts, completions, batch_size=3)
    alone = [tiny_chat.logprobs([p], [c], batch_size=1)[0] for p, c in zip(prompts, completions)]
    assert all(x < 0 for x in batched)
    assert batched == pytest.approx(alone, abs=1e-3)
    # more tokens of the same kind cost more log-probability
    two = tiny_chat.logprobs([prompts[0]] * 2, ["Agree", "Agree Agree Agree"])
    assert two[1] < two[0]


def test_interrupted_generation_resumes_from_persisted_batches(tiny_chat, tmp_path):
    cache = GenerationCache(tmp_path / "r.sqlite")
    reqs = _reqs(8, max_new_tokens=4, temperature=0.0)

    class Dies:
        version = tiny_chat.version

        def generate_batches(self, rs):
            for n, item in enumerate(tiny_chat.generate_batches(rs)):
                if n == 1:
                    raise KeyboardInterrupt
                yield item

    with pytest.raises(KeyboardInterrupt):
        generate(Dies(), reqs, cache)
    done = sum(1 for r in reqs if cache.get_many([GenerationCache.key(tiny_chat.version, r)]))
    assert done == 4  # the first batch of 4 survived
    calls = []

    class Counting:
        version = tiny_chat.version

        def generate_batches(self, rs):
            calls.append(len(rs))
            yield from tiny_chat.generate_batches(rs)

    out = generate(Counting(), reqs, cache)
    assert calls == [4] and sum(r.cached for r in out) == 4


def test_any_local_hf_folder_loads_like_a_hub_id(tiny_chat, tmp_path):
    """A user's own model: a plain HF folder path (a hub id goes through the same from_pretrained)."""
    import shutil

    from ealign_dagster.core.chat import LocalChat

    folder = tmp_path / "my-model"
    shutil.copytree(tiny_chat.path, folder)
    mine = LocalChat(ModelConfig(model=str(folder), batch_size=2), tiny_chat.home)
    assert mine.version == tiny_chat.version  # same weights, same version: the cache is shared
    out = generate(mine, _reqs(2, max_new_tokens=4, temperature=1.0), GenerationCache(tmp_path / "m.sqlite"))
    assert all(r.completion_tokens > 0 for r in out)


def test_shared_prefix_cache_gives_the_same_next_token_logits(tiny_chat):
    """Rows laid out as [prefix][padding][own tokens] over a reused prefix cache score exactly like
    plainly left-padded rows."""
    import torch

    from ealign_dagster.core.chat import LocalChat

    system = {"role": "system", "content": "You are a careful assistant. " * 12}
    reqs = [
        Request.chat([system, {"role": "user", "content": q}])
        for q in ("hi", "a longer question about the sea", "why?")
    ]
    cached = LocalChat(ModelConfig(model=tiny_chat.cfg.model, prefix_cache_min_tokens=16), tiny_chat.home)
    plain = LocalChat(ModelConfig(model=tiny_chat.cfg.model, prefix_cache_min_tokens=0), tiny_chat.home)
    ids_c, mask_c, past = cached._batch_inputs(reqs, None)
    ids_p, mask_p, none = plain._batch_inputs(reqs, None)
    assert past is not None and none is None
    shared = past.get_seq_length()
    assert shared > 40 and torch.equal(ids_c[:, :shared], ids_c[:1, :shared].expand(3, -1))

    def last_logits(ids, mask, cache=None, start=0):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            return tiny_chat.model(
                input_ids=ids[:, start:], attention_mask=mask, position_ids=pos[:, start:], cache=cache
            ).logits[:, -1]

    assert torch.allclose(last_logits(ids_c, mask_c, past, shared), last_logits(ids_p, mask_p), atol=1e-4)
