"""What the evaluation assets do for one model under test (the base, or one adapter): generate on
the evaluation set, judge, answer the persona items. One loaded base serves every adapter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ealign_dagster.config import Profile
from ealign_dagster.evaluation import served_name
from ealign_dagster.paths import file_version, stable_int, value_version
from ealign_dagster.store import Store


@dataclass
class ModelUnderTest:
    model_id: str  # 'base' or the adapter id
    adapter_id: str | None = None
    constitution: str | None = None
    scope: str | None = None
    path: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str | None:
        """The adapter's name in the chat layer (PEFT adapter name, or the endpoint's model name)."""
        return served_name(self.constitution, self.scope) if self.adapter_id else None

    def key_version(self, chat) -> str:
        return f"{chat.version}+{self.sha256}" if self.sha256 else chat.version

    def columns(self) -> dict:
        return {"model_id": self.model_id, "adapter_id": self.adapter_id, "constitution": self.constitution, "scope": self.scope}


def model_under_test(db: Store, constitution: str | None = None, scope: str | None = None) -> ModelUnderTest:
    if constitution is None:
        return ModelUnderTest("base")
    row = db.query("SELECT adapter_id, path, sha256 FROM adapters WHERE constitution = ? AND scope = ?", [constitution, scope])
    if row.empty:
        raise ValueError(f"no adapter registered for {constitution} x {scope}: materialize adapters first")
    r = row.iloc[0]
    return ModelUnderTest(r.adapter_id, r.adapter_id, constitution, scope, r.path, r.sha256)


def load_model(cfg: Profile, mut: ModelUnderTest):
    """The chat model for evaluation with the adapter attached (local) or addressed by name (endpoint)."""
    from ealign_dagster.chat import load_chat

    chat = load_chat(cfg.eval.model or cfg.student)
    if mut.adapter_id and getattr(chat, "attach", None):
        chat.attach(mut.name, mut.path)
    return chat


def eval_set(db: Store, cfg: Profile) -> tuple[pd.DataFrame, str]:
    """The evaluation prompts (shared by all scopes) plus the benign look-alikes, and their version."""
    from ealign_dagster.inputs import benign_path, load_benign

    harmful = db.query(
        "SELECT DISTINCT s.prompt_id, s.category, p.source, s.functional_category, p.text AS prompt"
        " FROM splits s JOIN prompts p USING (prompt_id) WHERE s.role = 'eval' ORDER BY s.prompt_id"
    )
    if harmful.empty:
        raise ValueError("splits has no evaluation rows: materialize splits first")
    harmful["benchmark"] = [f"{s}_{f}" if f else s for s, f in zip(harmful["source"], harmful["functional_category"])]
    harmful["kind"] = None
    scopes = db.query("SELECT DISTINCT scope FROM splits ORDER BY scope")["scope"].tolist()
    versions = {"splits": {s: db.version_of("splits", s) for s in scopes}}
    parts = [harmful[["prompt_id", "benchmark", "category", "kind", "prompt"]]]
    if cfg.eval.benign:
        rows = pd.DataFrame([p.model_dump() for p in load_benign().prompts]).rename(
            columns={"id": "prompt_id", "resembles": "category", "text": "prompt"})
        if cfg.eval.benign_limit is not None and len(rows) > cfg.eval.benign_limit:
            rows["_order"] = [stable_int(cfg.eval.seed, i) for i in rows["prompt_id"]]
            rows["_rank"] = rows.sort_values("_order").groupby("category").cumcount()
            rows = rows.sort_values(["_rank", "_order"]).head(cfg.eval.benign_limit).drop(columns=["_order", "_rank"])
        parts.append(rows.assign(benchmark="benign")[["prompt_id", "benchmark", "category", "kind", "prompt"]])
        versions["benign"] = file_version(benign_path())
        versions["benign_limit"] = cfg.eval.benign_limit
    df = pd.concat(parts, ignore_index=True)
    return df, value_version(versions)[:16]


def run_generations(cfg: Profile, db: Store, mut: ModelUnderTest, log=None) -> tuple[pd.DataFrame, dict]:
    from ealign_dagster.chat import Request, generate

    items, eval_version = eval_set(db, cfg)
    chat = load_model(cfg, mut)
    s = cfg.eval.sampling
    reqs = [Request.chat([{"role": "user", "content": p}], max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                         top_p=s.top_p, seed=stable_int(cfg.eval.seed, pid), adapter=mut.name)
            for p, pid in zip(items["prompt"], items["prompt_id"])]
    out = generate(chat, reqs, log=log, what=f"evaluation {mut.name or 'base'}", key_version=mut.key_version(chat))
    df = items.assign(**mut.columns(), response=[r.text for r in out], prompt_tokens=[r.prompt_tokens for r in out],
                      completion_tokens=[r.completion_tokens for r in out], model_version=chat.version,
                      adapter_sha256=mut.sha256, eval_version=eval_version)
    inputs = {"eval_set": eval_version, "model": chat.version, "adapter": mut.sha256, "sampling": s.model_dump(),
              "generated": int(sum(not r.cached for r in out))}
    return df, inputs


def run_judgments(cfg: Profile, db: Store, mut: ModelUnderTest, log=None) -> tuple[pd.DataFrame, dict]:
    from ealign_dagster.judges import run_judge

    gens = db.query("SELECT * FROM generations WHERE model_id = ? ORDER BY benchmark, prompt_id", [mut.model_id])
    if gens.empty:
        raise ValueError(f"generations has no rows for model {mut.model_id}: materialize the evaluation generations first")
    frames, versions = [], {}
    for judge in cfg.eval.judges:
        v = run_judge(judge, gens["prompt"].tolist(), gens["response"].tolist(), cfg.eval.llm_judge, log)
        versions[judge] = v.version
        frames.append(gens[["model_id", "adapter_id", "constitution", "scope", "benchmark", "prompt_id", "category",
                            "generation_version"]].assign(
            judge=judge, judge_version=v.version, refused=v.refused.astype(bool),
            harmful=pd.array([None if np.isnan(h) else bool(h) for h in v.harmful], dtype="boolean"),
            score=v.score, raw=v.raw))
    df = pd.concat(frames, ignore_index=True)
    inputs = {"generations": gens["generation_version"].iloc[0], "judges": versions}
    return df, inputs


def run_persona(cfg: Profile, db: Store, mut: ModelUnderTest, log=None) -> tuple[pd.DataFrame, dict]:
    from ealign_dagster.evaluation import score_items
    from ealign_dagster.inputs import item_bank_path, load_item_bank

    bank = load_item_bank()
    chat = load_model(cfg, mut)
    mcfg = cfg.eval.model or cfg.student
    df = score_items(chat, bank, mut.name, None, cfg.eval.persona_generate, cfg.eval.persona_sampling, cfg.eval.seed,
                     mcfg.batch_size, log, mut.key_version(chat))
    bank_version = file_version(item_bank_path())
    df = df.assign(model_id=mut.model_id, adapter_id=mut.adapter_id, persona="", item_bank_version=bank_version,
                   model_version=mut.key_version(chat))
    inputs = {"item_bank": bank_version, "model": chat.version, "adapter": mut.sha256,
              "persona_sampling": cfg.eval.persona_sampling.model_dump()}
    return df, inputs
