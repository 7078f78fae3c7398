"""The models under test: the base, every registered adapter (each constitution x scope x replicate
seed), the trained control arms' adapters, and the base system-prompted with each constitution's
persona; with how the chat layer addresses each (a PEFT adapter name locally, a model name on an
endpoint) and the system prompt it answers under."""

from __future__ import annotations

from dataclasses import dataclass

from ealign_dagster.core.store import Store

KINDS = ("base", "adapter", "control", "prompted")


def served_name(constitution: str, scope: str, seed: int = 0) -> str:
    """The adapter's name for PEFT switching and on an endpoint (vLLM --lora-modules NAME=PATH)."""
    return f"{constitution}-{scope}-s{seed}"


@dataclass(frozen=True)
class ModelUnderTest:
    model_id: str  # 'base', the adapter id, or 'prompted:<constitution>'
    adapter_id: str | None = None
    constitution: str | None = None  # a constitution or a trained control arm
    scope: str | None = None
    path: str | None = None
    sha256: str | None = None
    kind: str = "base"  # base | adapter | control (a control arm's adapter) | prompted (base + persona)
    seed: int | None = None
    system: str | None = None  # prompted: the constitution's persona, sent as the system prompt

    @property
    def name(self) -> str | None:
        """The adapter's name in the chat layer, None where the base weights answer."""
        return served_name(self.constitution, self.scope, self.seed or 0) if self.adapter_id else None

    def messages(self, user: str) -> list[dict]:
        """The chat this model is asked: the user turn, after the persona for a prompted model."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}
        ]

    def served_version(self, chat) -> str:
        """The version of what answers for this model: the local base weights, or an endpoint's
        fingerprint of the model it serves under this name (so a re-served adapter is a new version)."""
        return chat.served_version(self.name) if hasattr(chat, "served_version") else chat.version

    def key_version(self, chat) -> str:
        """What the generation cache keys on: the served version plus the adapter's checksum."""
        served = self.served_version(chat)
        return f"{served}+{self.sha256}" if self.sha256 else served

    def columns(self) -> dict:
        return {
            "model_id": self.model_id,
            "model_kind": self.kind,
            "adapter_id": self.adapter_id,
            "constitution": self.constitution,
            "scope": self.scope,
            "seed": self.seed,
        }


BASE = ModelUnderTest("base")
COLUMN_TYPES = {"model_id": "String", "model_kind": "String", "adapter_id": "String", "constitution": "String",
                "scope": "String", "seed": "Int64"}  # fmt: skip


def models_under_test(store: Store, study=None) -> list[ModelUnderTest]:
    """The base; every adapter registered now whose constitution file still exists (or whose control
    arm is in study.controls) and whose seed is in study.seeds (others stay in the registry as
    history); with study.controls' persona_prompt, the base prompted as each constitution's persona.
    study: the profile's StudyConfig (default: the current profile's)."""
    from ealign_dagster.core.config import TRAINED_CONTROLS
    from ealign_dagster.core.paths import in_home
    from ealign_dagster.core.schemas import load_constitutions

    if study is None:
        import os

        from ealign_dagster.core.config import load_profile

        study = load_profile(os.environ.get("EALIGN_PROFILE", "demo")).study
    constitutions = load_constitutions()
    arms = list(constitutions) + study.trained_controls()
    rows = store.query(
        "SELECT adapter_id, constitution, scope, seed, path, sha256 FROM adapters"
        " WHERE list_contains(?, constitution) AND list_contains(?, seed) ORDER BY constitution, scope, seed",
        [arms, list(study.seeds)],
    )
    trained = [
        ModelUnderTest(r["adapter_id"], r["adapter_id"], r["constitution"], r["scope"], in_home(r["path"], store.path.parent),
                       r["sha256"], kind="control" if r["constitution"] in TRAINED_CONTROLS else "adapter", seed=r["seed"])
        for r in rows.iter_rows(named=True)
    ]  # fmt: skip
    prompted = [
        ModelUnderTest(f"prompted:{name}", constitution=name, kind="prompted", system=con.persona)
        for name, con in constitutions.items()
        if "persona_prompt" in study.controls
    ]
    return [BASE] + trained + prompted


def attach(chat, mut: ModelUnderTest):
    """Attach a model's adapter to a loaded local base (once); endpoints address adapters by name."""
    if mut.adapter_id and getattr(chat, "attach", None):
        chat.attach(mut.name, mut.path)
    return chat
