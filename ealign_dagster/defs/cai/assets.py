"""Base models, the student's initial answers, constitutional revisions and the SFT datasets."""

import dagster as dg

from ealign_dagster.automation import eager
import pandas as pd

from ealign_dagster.defs.sources.assets import constitution_files
from ealign_dagster.defs.splits.assets import splits
from ealign_dagster.meta import counts_md, table_metadata
from ealign_dagster.partitions import CONSTITUTION_X_SCOPE, CONSTITUTIONS
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage, data_version


@dg.asset(group_name="cai", pool="duckdb", kinds={"pytorch"}, automation_condition=eager())
def base_model(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """The student and teacher models as plain HF folders (offline packs converted once)."""
    from ealign_dagster import models

    cfg = profile.load()
    rows = []
    for role, m in (("student", cfg.student), ("teacher", cfg.teacher)):
        path, version, params = None, f"openai:{m.base_url}:{m.model}", None
        if m.backend == "local":
            if models.is_built(m.model):
                path = str(models.build(m.model, log=context.log.info))
            else:
                path = m.model
            from ealign_dagster.chat import LocalChat

            chat = LocalChat(m)
            version, params = chat.version, sum(p.numel() for p in chat.model.parameters())
        rows.append({"model_id": m.model, "role": role, "backend": m.backend, "path": path,
                     "model_version": version, "parameters": params})
    df = pd.DataFrame(rows)
    version = data_version(df)
    store.get().replace("models", df, {}, Lineage(context.run_id, "base_model", "", {"profile": profile.version()}), version)
    return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata={**table_metadata(df), "data_version": version})


@dg.asset(deps=[splits, base_model], group_name="cai", pool="duckdb", kinds={"pytorch", "duckdb"}, automation_condition=eager())
def initial_responses(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """The helpful-only student's answer to every training prompt of every scope."""
    from ealign_dagster.cai import sampled_request
    from ealign_dagster.chat import generate, load_chat

    cfg = profile.load()
    db = store.get()
    items = db.query(
        "SELECT DISTINCT s.prompt_id, p.text AS prompt FROM splits s JOIN prompts p USING (prompt_id)"
        " WHERE s.role = 'train' ORDER BY s.prompt_id"
    )
    chat = load_chat(cfg.student)
    reqs = [sampled_request([{"role": "user", "content": t}], cfg.cai.initial, cfg.cai.seed) for t in items["prompt"]]
    results = generate(chat, reqs, log=context.log.info, what="initial responses")
    df = items.assign(
        response=[r.text for r in results], model_id=cfg.student.model, model_version=chat.version,
        prompt_tokens=[r.prompt_tokens for r in results], completion_tokens=[r.completion_tokens for r in results],
    )
    inputs = {"splits": {s: db.version_of("splits", s) for s in db.query("SELECT DISTINCT scope FROM splits")["scope"]},
              "student": chat.version, "cai_initial": cfg.cai.initial.model_dump()}
    version = data_version(df)
    db.replace("initial_responses", df, {}, Lineage(context.run_id, "initial_responses", "", inputs), version)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["prompt_id", "prompt", "response", "completion_tokens"]),
            "generated": sum(not r.cached for r in results), "from_cache": sum(r.cached for r in results),
            "completion_tokens": int(df["completion_tokens"].sum()), "data_version": version,
        },
    )


def _chains_md(df: pd.DataFrame, n: int = 3) -> dg.MetadataValue:
    def cut(s):
        return str(s).replace("\n", " ").replace("|", "/")[:240]

    parts = []
    for _, r in df[df["selected"]].head(n).iterrows():
        parts.append(
            f"**{r.prompt_id}** ({r.principle_id})\n\n- prompt: {cut(r.prompt)}\n- initial: {cut(r.initial)}\n"
            f"- critique: {cut(r.critique)}\n- revision: {cut(r.revision)}\n"
        )
    return dg.MetadataValue.md("\n".join(parts) or "_no accepted revision_")


@dg.asset(
    deps=[initial_responses, constitution_files],
    partitions_def=CONSTITUTIONS,
    group_name="cai",
    automation_condition=eager(),
    pool="duckdb",
    kinds={"pytorch", "duckdb"},
)
def cai_revisions(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Critique -> revision under one constitution for every initial answer, with the acceptance filter."""
    from ealign_dagster.cai import run_cai
    from ealign_dagster.chat import load_chat
    from ealign_dagster.inputs import load_constitution
    from ealign_dagster.paths import assets_dir, file_version

    name = context.partition_key
    path = assets_dir() / "constitutions" / f"{name}.yaml"
    con = load_constitution(path)
    cfg = profile.load()
    db = store.get()
    items = db.query("SELECT prompt_id, prompt, response AS initial FROM initial_responses ORDER BY prompt_id")
    chat = load_chat(cfg.teacher)
    df = run_cai(chat, con, items, cfg.cai, log=context.log.info)
    df["teacher_id"], df["teacher_version"] = cfg.teacher.model, chat.version
    df["constitution_version"] = file_version(path)
    inputs = {"initial_responses": db.version_of("initial_responses"), "constitution": file_version(path),
              "constitution_path": str(path),
              "teacher": chat.version, "cai": cfg.cai.model_dump()}
    version = data_version(df)
    db.replace("cai_revisions", df, {"constitution": name}, Lineage(context.run_id, "cai_revisions", name, inputs), version)
    final = df[df["round"] == cfg.cai.rounds - 1]
    rate = float(df.groupby("prompt_id")["selected"].any().mean()) if len(df) else 0.0
    context.log.info(f"{name}: {rate:.0%} of prompts have an accepted revision")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["prompt_id", "principle_id", "critique", "revision", "accepted", "reject_reason"]),
            "acceptance_rate": rate,
            "candidate_acceptance_rate": float(final["accepted"].mean()) if len(final) else 0.0,
            "reject_reasons": counts_md(final["reject_reason"].fillna("accepted").value_counts().to_dict(), "reason"),
            "chains": _chains_md(df),
            "generated_tokens": int(df["critique_tokens"].sum() + df["revision_tokens"].sum()),
            "data_version": version,
        },
    )


@dg.asset(
    deps=[
        dg.AssetDep(cai_revisions, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("constitution")),
        dg.AssetDep(splits, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("scope")),
    ],
    partitions_def=CONSTITUTION_X_SCOPE,
    group_name="cai",
    automation_condition=eager(),
    pool="duckdb",
    kinds={"duckdb"},
)
def sft_datasets(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """Chat examples (prompt, accepted revision) for one constitution x scope."""
    from transformers import AutoTokenizer

    from ealign_dagster.models import resolve
    from ealign_dagster.sft import build_sft

    keys = context.partition_key.keys_by_dimension
    name, scope = keys["constitution"], keys["scope"]
    cfg = profile.load()
    db = store.get()
    train = db.query("SELECT prompt_id, category, split_version FROM splits WHERE scope = ? AND role = 'train'", [scope])
    revs = db.query("SELECT * FROM cai_revisions WHERE constitution = ?", [name])
    tok = AutoTokenizer.from_pretrained(resolve(cfg.student.model))
    df, dropped = build_sft(name, scope, train, revs, tok, cfg.sft)
    split_version = db.version_of("splits", scope)
    cai_version = db.version_of("cai_revisions", name)
    con_version = revs["constitution_version"].iloc[0] if len(revs) else ""
    df["split_version"], df["cai_version"], df["constitution_version"] = split_version, cai_version, con_version
    version = data_version(df)
    df["sft_version"] = version
    inputs = {"splits": split_version, "cai_revisions": cai_version, "constitution": con_version, "sft": cfg.sft.model_dump()}
    db.replace("sft_examples", df, {"constitution": name, "scope": scope},
               Lineage(context.run_id, "sft_datasets", context.partition_key, inputs), version)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            **table_metadata(df, ["prompt_id", "category", "prompt", "response", "n_tokens"]),
            "left_out": counts_md(dropped, "reason"),
            "tokens": int(df["n_tokens"].sum()) if len(df) else 0,
            "data_version": version,
        },
    )
