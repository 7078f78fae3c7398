"""One LoRA adapter per constitution x scope, trained on its SFT dataset and registered."""

import json

import dagster as dg

from ealign_dagster.automation import eager
import pandas as pd

from ealign_dagster.defs.cai.assets import base_model, sft_datasets
from ealign_dagster.meta import table_metadata
from ealign_dagster.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.resources import ProfileResource, StoreResource
from ealign_dagster.store import Lineage

# On Kubernetes (dagster-k8s), each training step asks for one GPU.
GPU_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}


@dg.asset(
    deps=[sft_datasets, base_model],
    partitions_def=CONSTITUTION_X_SCOPE,
    group_name="training",
    automation_condition=eager(),
    pool="train",
    op_tags=GPU_TAGS,
    kinds={"pytorch"},
)
def adapters(context: dg.AssetExecutionContext, profile: ProfileResource, store: StoreResource) -> dg.MaterializeResult:
    """A LoRA adapter (standard PEFT folder) for one constitution x scope, with its registry row."""
    from transformers import AutoTokenizer

    from ealign_dagster.models import resolve
    from ealign_dagster.paths import artifacts_dir, value_version
    from ealign_dagster.paths import folder_sha256
    from ealign_dagster.training import tokenize, train

    keys = context.partition_key.keys_by_dimension
    name, scope = keys["constitution"], keys["scope"]
    cfg = profile.load()
    db = store.get()
    sft = db.query("SELECT prompt, response, sft_version FROM sft_examples WHERE constitution = ? AND scope = ? ORDER BY prompt_id", [name, scope])
    if sft.empty:
        raise ValueError(f"sft_examples has no rows for {name} x {scope}: materialize sft_datasets first")
    base_path = resolve(cfg.student.model)
    base_version = db.query("SELECT model_version FROM models WHERE role = 'student'")["model_version"].iloc[0]
    sft_version = sft["sft_version"].iloc[0]
    hyper = cfg.train.model_dump()
    adapter_id = value_version({"constitution": name, "scope": scope, "seed": cfg.train.seed, "base": base_version,
                                "sft": sft_version, "hyper": hyper})[:12]
    tok = AutoTokenizer.from_pretrained(base_path)
    examples = tokenize(tok, sft["prompt"].tolist(), sft["response"].tolist(), cfg.train.max_length)
    root = artifacts_dir() / "adapters" / name / scope
    out = root / adapter_id
    result = train(base_path, examples, cfg.train, out, root / f".ckpt-{adapter_id}", log=context.log.info,
                   pad_id=tok.pad_token_id)
    sha = folder_sha256(out)
    row = pd.DataFrame([{
        "adapter_id": adapter_id, "constitution": name, "scope": scope, "seed": cfg.train.seed,
        "base_model": cfg.student.model, "base_version": base_version, "sft_version": sft_version,
        "hyperparams": json.dumps(hyper, sort_keys=True),
        "examples": len(examples), "steps": result.steps, "train_loss": result.train_loss, "tokens": result.tokens,
        "seconds": result.seconds, "tokens_per_s": result.tokens / max(result.seconds, 1e-9), "device": result.device,
        "dtype": result.dtype, "peak_memory_mb": result.peak_memory_mb, "resumed_from": result.resumed_from,
        "path": str(out), "sha256": sha,
    }])
    log = pd.DataFrame(result.log).assign(adapter_id=adapter_id, constitution=name, scope=scope)
    inputs = {"sft_datasets": sft_version, "base_model": base_version, "train": hyper}
    lineage = Lineage(context.run_id, "adapters", str(context.partition_key), inputs)
    where = {"constitution": name, "scope": scope}
    db.replace_many([("adapters", row, where), ("train_log", log, where)], lineage, sha[:16])
    return dg.MaterializeResult(
        data_version=dg.DataVersion(sha[:16]),
        metadata={
            **table_metadata(row, ["adapter_id", "steps", "train_loss", "tokens_per_s", "device", "peak_memory_mb"]),
            "loss_curve": dg.MetadataValue.md(_loss_md(result.log)),
            "hyperparams": dg.MetadataValue.json(hyper),
            "train_loss": result.train_loss,
            "tokens_per_s": round(result.tokens / max(result.seconds, 1e-9), 1),
            "path": dg.MetadataValue.path(str(out)),
            "sha256": sha,
        },
    )


def _loss_md(log: list[dict], width: int = 40) -> str:
    """The loss curve as a small text chart (one row per step, a bar per loss)."""
    if not log:
        return "_no steps_"
    hi = max(h["loss"] for h in log) or 1.0
    rows = [f"{h['step']:>4} {h['loss']:.3f} {'█' * max(1, round(width * h['loss'] / hi))}" for h in log]
    return "```\n" + "\n".join(rows) + "\n```"
