"""Several adapters in one call: switched one at a time, or mixed row by row in the same batches
(PEFT adapter_names). Greedy answers must not depend on the mode nor on which other models share a
batch."""

import pytest

from ealign_dagster.core.chat import Request, generate
from ealign_dagster.core.config import ModelConfig
from tests.test_training import PROMPTS, two_adapters

NAMES = (None, "a", "b")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny base and two adapters trained to different weights."""
    return two_adapters(tmp_path_factory)


def _chat(world, mode: str):
    from ealign_dagster.core.chat import LocalChat

    home, path, adapters = world
    chat = LocalChat(ModelConfig(model=path, batch_size=4, adapter_batching=mode), home)
    for name, p in adapters.items():
        chat.attach(name, p)
    return chat


def _requests(n_prompts: int = 6) -> list[Request]:
    prompts = [f"Question {i}: {p}" for i, p in enumerate(PROMPTS * 2)][:n_prompts]
    return [Request.chat([{"role": "user", "content": p}], max_new_tokens=6, temperature=0.0, adapter=a)
            for a in NAMES for p in prompts]  # fmt: skip


def _answers(chat, reqs) -> list[str]:
    out: list[str | None] = [None] * len(reqs)
    for idx, results in chat.generate_batches(reqs):
        for i, r in zip(idx, results):
            out[i] = r.text
    return out


def test_greedy_answers_are_the_same_switched_and_mixed(world):
    reqs = _requests()
    answers = {mode: _answers(_chat(world, mode), reqs) for mode in ("switch", "mixed")}
    assert answers["mixed"] == answers["switch"]
    per_model = {a: [t for r, t in zip(reqs, answers["switch"]) if r.adapter == a] for a in NAMES}
    assert per_model["a"] != per_model[None] and per_model["b"] != per_model["a"]  # the adapters do differ
    # one model alone gives the answers it gave in a batch shared with the others
    alone = _answers(_chat(world, "switch"), [r for r in reqs if r.adapter == "b"])
    assert alone == per_model["b"]


def test_auto_mixes_on_cuda_only(world):
    chat = _chat(world, "auto")
    assert chat.batching == ("mixed" if chat.device == "cuda" else "switch")


def test_one_generate_call_over_several_models_keys_each_answer_by_its_model(world):
    chat = _chat(world, "mixed")
    reqs = _requests(2)
    versions = [f"v-{r.adapter}" for r in reqs]
    first = generate(chat, reqs, key_version=versions)
    again = generate(chat, reqs, key_version=versions)
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in first]
    other = generate(chat, reqs, key_version=[v + "-retrained" for v in versions])
    assert not any(r.cached for r in other)
    with pytest.raises(ValueError):
        generate(chat, reqs, key_version=versions[:-1])


def test_rows_under_one_system_prompt_share_a_batch(world):
    """Persona runs: rows are batched by system prompt first, so a batch shares the persona prefix
    (prefilled once); sorted by length alone, two personas of the same length were interleaved."""
    chat = _chat(world, "switch")
    personas = [
        "You are Ann, who keeps every promise she makes. " * 3,
        "You are Bob, who weighs each outcome with care. " * 3,
    ]
    assert len(personas[0]) == len(personas[1])
    reqs = [Request.chat([{"role": "system", "content": p}, {"role": "user", "content": "Why?" + " really" * i}],
                         max_new_tokens=2, temperature=0.0) for i in range(4) for p in personas]  # fmt: skip
    batches = [{reqs[i].messages[0][1] for i in idx} for idx, _ in chat.generate_batches(reqs)]
    assert len(batches) == 2 and all(len(b) == 1 for b in batches)
