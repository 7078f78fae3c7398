"""`adapters[constitution x scope]`: one LoRA adapter per cell, trained on its SFT dataset and registered."""

import dagster as dg
import polars as pl

from ealign_dagster.cai.assets import base_model, sft_datasets
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import owns, write

# On Kubernetes (dagster-k8s), each training step asks for one GPU.
GPU_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}


@dg.asset(
    deps=[sft_datasets, base_model], partitions_def=CONSTITUTION_X_SCOPE, group_name="training",
    automation_condition=eager(), pool="train", op_tags=GPU_TAGS, kinds={"pytorch"},
    metadata=owns("adapters", "train_log"),
)  # fmt: skip
def adapters(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """A LoRA adapter (standard PEFT folder) for one constitution x scope, with its registry row."""
    from ealign_dagster.training.lora import loss_chart, train_adapter

    keys = context.partition_key.keys_by_dimension
    name, scope = keys["constitution"], keys["scope"]
    row, steps = train_adapter(ealign.cfg, ealign.paths, ealign.store, name, scope, log=context.log.info)
    return write(
        context, ealign.store, {"adapters": pl.DataFrame([row]), "train_log": pl.DataFrame(steps)},
        where={"constitution": name, "scope": scope}, version=row["sha256"][:16], inputs={"train": ealign.version("train")},
        preview=["adapter_id", "steps", "train_loss", "tokens_per_s", "device", "peak_memory_mb"],
        metadata={"loss_curve": dg.MetadataValue.md(loss_chart(steps)), "path": dg.MetadataValue.path(str(ealign.paths.root / row["path"])),
                  "sha256": row["sha256"]},
    )  # fmt: skip
