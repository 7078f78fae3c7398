"""The models under test: the base and every registered adapter, with how the chat layer addresses
each (a PEFT adapter name locally, a model name on an endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from ealign_dagster.core.store import Store


def served_name(constitution: str, scope: str) -> str:
    """The adapter's name for PEFT switching and on an endpoint (vLLM --lora-modules NAME=PATH)."""
    return f"{constitution}-{scope}"


@dataclass(frozen=True)
class ModelUnderTest:
    model_id: str  # 'base' or the adapter id
    adapter_id: str | None = None
    constitution: str | None = None
    scope: str | None = None
    path: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str | None:
        """The adapter's name in the chat layer, None for the base."""
        return served_name(self.constitution, self.scope) if self.adapter_id else None

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
            "adapter_id": self.adapter_id,
            "constitution": self.constitution,
            "scope": self.scope,
        }


BASE = ModelUnderTest("base")


def models_under_test(store: Store) -> list[ModelUnderTest]:
    """The base and every adapter registered now (one per constitution x scope) whose constitution
    file still exists (a removed constitution's adapters stay in the registry as history)."""
    from ealign_dagster.core.paths import in_home
    from ealign_dagster.core.schemas import constitution_paths

    current = [p.stem for p in constitution_paths()]
    rows = store.query(
        "SELECT adapter_id, constitution, scope, path, sha256 FROM adapters WHERE list_contains(?, constitution)"
        " ORDER BY constitution, scope",
        [current],
    )
    return [BASE] + [
        ModelUnderTest(
            r["adapter_id"],
            r["adapter_id"],
            r["constitution"],
            r["scope"],
            in_home(r["path"], store.path.parent),
            r["sha256"],
        )  # fmt: skip
        for r in rows.iter_rows(named=True)
    ]


def attach(chat, mut: ModelUnderTest):
    """Attach a model's adapter to a loaded local base (once); endpoints address adapters by name."""
    if mut.adapter_id and getattr(chat, "attach", None):
        chat.attach(mut.name, mut.path)
    return chat
