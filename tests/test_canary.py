"""The adapter canary on the tiny model: a trained adapter is applied, a no-op adapter is caught by
name, and over HTTP a served adapter must answer like the local PEFT one (the tiny model and real PEFT
adapters served by name, tests/serve_local.py); one that does not is named with what it answers like."""

from pathlib import Path

import pytest

from ealign_dagster.core.config import ModelConfig
from ealign_dagster.evaluation.canary import MIN_EFFECT, check_adapters, distance
from ealign_dagster.evaluation.models import BASE, ModelUnderTest
from tests.serve_local import LocalServer
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
    mut = {n: ModelUnderTest(n, n, "virtue", n, str(root / n), sha256=n, kind="adapter", seed=0)
           for n in ("trained", "other", "noop")}  # fmt: skip
    return LocalChat(ModelConfig(model=path, batch_size=4), home), mut, home


def test_a_trained_adapter_passes_and_a_noop_adapter_fails_by_name(world):
    chat, mut, _ = world
    logs = []
    results = {r.model_id: r for r in check_adapters(chat, [BASE, mut["trained"], mut["noop"]], log=logs.append)}
    assert results["trained"].status == "applied" and results["trained"].vs_base > 1e-3
    assert results["noop"].status == "not_applied" and results["noop"].failed and results["noop"].vs_base < MIN_EFFECT
    assert f"adapter {mut['noop'].name} (noop) is not applied" in results["noop"].message()
    assert len(logs) == 2 and "BASE" not in results


def test_distance_is_symmetric_and_a_lower_bound_outside_the_top_k():
    a = [{"x": -0.1, "y": -2.0}]
    b = [{"x": -0.3, "z": -1.0}]
    # x differs by 0.2; y is in a's top-k only: it is at least -2.0 - (-1.0) < 0 above b's floor -> 0;
    # z is in b's only: at least -1.0 - (-2.0) = 1.0 above a's floor
    assert distance(a, b) == distance(b, a) == pytest.approx(1.0)
    assert distance(a, a) == 0.0


def _remote(server, home):
    from ealign_dagster.core.openai_chat import OpenAIChat

    return OpenAIChat(ModelConfig(backend="openai", model="tiny", base_url=server.url, max_retries=0), home)


def test_served_adapters_must_answer_like_the_local_peft_adapter(world):
    chat, mut, home = world
    trained, other = mut["trained"], mut["other"]
    # 'other' is served from trained's folder: the wrong weights under its name
    with LocalServer(chat.cfg, home, "tiny", {trained.name: trained.path, other.name: trained.path}) as server:
        out = {r.model_id: r for r in check_adapters(_remote(server, home), [BASE, trained, other], local=chat,
                                                     tolerance=0.01)}  # fmt: skip
    assert out["trained"].status == "applied" and out["trained"].vs_local < 1e-4
    assert out["trained"].local_effect > 0.01 and out["trained"].like is None
    assert out["other"].status == "differs_from_local" and out["other"].failed and out["other"].vs_local > 0.01
    assert out["other"].like[:2] == (trained.name, "trained") and out["other"].like[2] < 1e-4
    assert (f"adapter {other.name} (other) served by {server.url} answers like the local adapter {trained.name} "
            "(trained), not like itself") in out["other"].message()  # fmt: skip


def test_an_adapter_the_endpoint_does_not_apply_answers_like_the_base(world):
    """A no-op adapter served under the trained one's name: the endpoint answers with the base weights."""
    chat, mut, home = world
    trained = mut["trained"]
    with LocalServer(chat.cfg, home, "tiny", {trained.name: mut["noop"].path}) as server:
        (r,) = check_adapters(_remote(server, home), [BASE, trained], local=chat, tolerance=0.01)
    assert r.status == "differs_from_local" and r.like[0] == "base" and r.like[2] < 1e-4
    assert r.message().startswith(
        f"adapter {trained.name} (trained) served by {server.url} answers like the base model"
    )
