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


def _texts(chat, reqs) -> list[str]:
    out = [""] * len(reqs)
    for batch, results in chat.generate_batches(reqs):
        for i, r in zip(batch, results):
            out[i] = r.text
    return out


def test_local_sample_does_not_depend_on_its_batch(tiny_chat):
    """A sampled request gives the same text alone, in a batch of 2 and in a batch of 5 (the old code
    seeded torch once per batch from all its seeds, so a request's sample changed with its company).
    The other requests have other lengths, so the target is left-padded in some batches and not in
    others; padding moves logits by float noise only (~1e-6), far below the gap between the best and
    second-best noisy score that decides a draw."""
    from ealign_dagster.core.chat import LocalChat

    kw = dict(max_new_tokens=8, temperature=1.0, top_p=0.9)
    target = Request.chat([{"role": "user", "content": "question 7"}], seed=5, **kw)
    others = [Request.chat([{"role": "user", "content": "q" + " more" * i}], seed=i, **kw) for i in range(1, 5)]
    wide = LocalChat(ModelConfig(model=tiny_chat.cfg.model, batch_size=8), tiny_chat.home)
    alone = _texts(tiny_chat, [target])[0]
    assert alone and _texts(tiny_chat, [others[3], target])[1] == alone
    five = _texts(wide, [others[0], target, *others[1:]])
    assert five[1] == alone and len(set(five)) == 5
    assert _texts(wide, [target, others[0]])[0] == alone  # again: nothing global is consumed


def test_greedy_requests_are_unchanged(tiny_chat):
    """temperature 0 is plain greedy decoding: no noise, the same text in any batch."""
    kw = dict(max_new_tokens=6, temperature=0.0)
    reqs = [Request.chat([{"role": "user", "content": f"question {i}"}], seed=i, **kw) for i in range(3)]
    one = [_texts(tiny_chat, [r])[0] for r in reqs]
    assert _texts(tiny_chat, reqs) == one
    ids = tiny_chat.tokenizer(
        tiny_chat.tokenizer.apply_chat_template(reqs[0].as_messages(), add_generation_prompt=True, tokenize=False),
        return_tensors="pt",
        add_special_tokens=False,
    )["input_ids"]
    greedy = tiny_chat.model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
    assert one[0] == tiny_chat.tokenizer.decode(greedy[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_local_option_logprobs_match_completion_logprobs(tiny_chat):
    """On SmolLM2's tokenizer Likert digits are single tokens (the prefill alone scores them); a longer
    option in the same call continues from the prompts' cache. Both equal `logprobs` of the option as a
    completion."""
    prompts = [[{"role": "user", "content": q}] for q in ("hi", "a much longer question about the weather today")]
    options = ["1", "2", "5", "Strongly agree"]
    lp = tiny_chat.option_logprobs(prompts, options, batch_size=2)
    for row, p in zip(lp, prompts):
        assert row == pytest.approx(tiny_chat.logprobs([p] * len(options), options), abs=1e-4)


def test_a_reserved_endpoint_model_is_asked_again(paths):
    """The cache keys an endpoint's answers on a fingerprint of what it serves (its greedy answers to the
    canary prompts): the same served model is answered from the cache; a changed or re-served one is
    asked again (before: keyed on URL + name, so a changed model was answered from the cache forever)."""
    from ealign_dagster.evaluation.models import ModelUnderTest

    with Endpoint() as ep:
        adapter = ModelUnderTest("a1", "a1", "virtue", "broad", sha256="abc")
        reqs = _reqs(3, adapter=adapter.name)
        first = generate(chat := _chat(ep.url, paths), reqs, key_version=adapter.key_version(chat))
        assert len(ep.requests) == 3 and not any(r.cached for r in first)
        again = generate(chat := _chat(ep.url, paths), reqs, key_version=adapter.key_version(chat))
        assert len(ep.requests) == 3 and all(r.cached for r in again)  # a new process, same served model
        ep.served = "weights-v2"  # the adapter is re-served from new weights under the same name
        chat = _chat(ep.url, paths)
        third = generate(chat, reqs, key_version=adapter.key_version(chat))
        assert len(ep.requests) == 6 and not any(r.cached for r in third)
        assert ep.fingerprints == 3 * 4  # one look per process and served name: 4 canary prompts


def test_endpoint_retries_and_slow_answers_are_never_silent(paths):
    """Each retried answer is said with its status and attempt, running out is said, and a wait with
    nothing answered says so at least every `every` seconds."""
    with Endpoint() as ep:
        chat, lines = _chat(ep.url, paths, max_retries=2), []
        chat.say = lines.append
        ep.script = [429, 500, 200]
        generate(chat, _reqs(1))
        assert [x.split(": ", 1)[1] for x in lines] == ["HTTP 429, retry 1/2", "HTTP 500, retry 2/2"]
        assert all(x.startswith(f"{ep.url} (model teacher-x)") for x in lines)
        lines.clear()
        ep.script = [500, 500, 500]
        with pytest.raises(EndpointError):
            generate(chat, _reqs(1, seed=9))
        assert lines[-1].endswith("HTTP 500, retries exhausted")
        lines.clear()
        ep.script = [("sleep", 0.5)]
        out = list(chat.generate_batches(_reqs(1, seed=11), every=0.1))
        assert len(out) == 1 and any("waiting for 1 answers" in x for x in lines)


def test_a_malformed_endpoint_reply_is_one_line_naming_the_endpoint(paths):
    with Endpoint() as ep:
        ep.script = ["garbage"]
        with pytest.raises(EndpointError) as e:
            generate(_chat(ep.url, paths, max_retries=0), _reqs(1))
        assert str(e.value).startswith(f"{ep.url} (model teacher-x): malformed reply") and "\n" not in str(e.value)
