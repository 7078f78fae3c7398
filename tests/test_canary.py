"""The adapter canary on the tiny model: a trained adapter is applied, a no-op adapter is caught by
name, and over HTTP a served adapter must answer like the local PEFT one (a real tiny model with real
PEFT adapters behind an OpenAI-compatible socket)."""

from pathlib import Path

import pytest

from ealign_dagster.core.config import ModelConfig
from ealign_dagster.evaluation.canary import MIN_EFFECT, TOP_K, check_adapters, distance
from ealign_dagster.evaluation.models import BASE, ModelUnderTest
from tests.fake_endpoint import Endpoint
from tests.test_training import two_adapters


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny base loaded once, two trained adapters and one that was never trained (B = 0)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ealign_dagster.core.chat import LocalChat

    home, path, trained = two_adapters(tmp_path_factory, ("trained", "other"))
    root = Path(trained["trained"]).parent
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=4, target_modules=["q_proj"]))
    peft.save_pretrained(root / "noop")  # LoRA's B starts at zero: this adapter changes nothing
    mut = {n: ModelUnderTest(n, n, "virtue", n, str(root / n), sha256=n) for n in ("trained", "other", "noop")}
    return LocalChat(ModelConfig(model=path, batch_size=4), home), mut, home


def test_a_trained_adapter_passes_and_a_noop_adapter_fails_by_name(world):
    chat, mut, _ = world
    logs = []
    results = {r.model_id: r for r in check_adapters(chat, [BASE, mut["trained"], mut["noop"]], log=logs.append)}
    assert results["trained"].status == "applied" and results["trained"].vs_base > 1e-3
    assert results["noop"].status == "not_applied" and results["noop"].failed and results["noop"].vs_base < MIN_EFFECT
    assert "adapter virtue-noop (noop) is not applied" in results["noop"].message()
    assert len(logs) == 2 and "BASE" not in results


def test_distance_is_symmetric_and_a_lower_bound_outside_the_top_k():
    a = [{"x": -0.1, "y": -2.0}]
    b = [{"x": -0.3, "z": -1.0}]
    # x differs by 0.2; y is in a's top-k only: it is at least -2.0 - (-1.0) < 0 above b's floor -> 0;
    # z is in b's only: at least -1.0 - (-2.0) = 1.0 above a's floor
    assert distance(a, b) == distance(b, a) == pytest.approx(1.0)
    assert distance(a, a) == 0.0


def _serve(local, adapters: dict[str, str | None]):
    """An OpenAI-compatible endpoint answering top log-probabilities from the real local model; each
    served name maps to a local adapter name (None: the base weights)."""
    ep = Endpoint()

    def top(body):
        d = local.next_token_logprobs([body["messages"]], TOP_K, adapter=adapters.get(body["model"]))[0]
        return sorted(d.items(), key=lambda kv: -kv[1])

    ep.top_logprobs = top
    return ep


def test_served_adapters_must_answer_like_the_local_peft_adapter(world):
    from ealign_dagster.core.openai_chat import OpenAIChat
    from ealign_dagster.evaluation.models import attach

    chat, mut, home = world
    for m in mut.values():
        attach(chat, m)
    served = {"tiny": None, "virtue-trained": "virtue-trained", "virtue-other": "virtue-trained"}  # a wrong one
    with _serve(chat, served) as ep:
        remote = OpenAIChat(ModelConfig(backend="openai", model="tiny", base_url=ep.url, max_retries=0), home)
        out = {r.model_id: r for r in check_adapters(remote, [BASE, mut["trained"], mut["other"]], local=chat,
                                                     tolerance=0.01)}  # fmt: skip
    assert out["trained"].status == "applied" and out["trained"].vs_local < 1e-4
    assert out["trained"].local_effect > 0.01
    # 'other' is served from the wrong weights: it answers like virtue-trained, not like itself
    assert out["other"].status == "differs_from_local" and out["other"].failed
    assert "virtue-other (other) as served differs from the trained one" in out["other"].message()
