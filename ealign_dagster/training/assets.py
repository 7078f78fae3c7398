"""`adapters[constitution x scope]`: one LoRA adapter per cell, trained on its SFT dataset and registered."""

import dagster as dg
import polars as pl

from ealign_dagster.cai.assets import base_model, sft_datasets
from ealign_dagster.orchestration.automation import eager
from ealign_dagster.orchestration.partitions import CONSTITUTION_X_SCOPE
from ealign_dagster.orchestration.placement import model_tags
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import owns, write


@dg.asset(
    deps=[sft_datasets, base_model], partitions_def=CONSTITUTION_X_SCOPE, group_name="training",
    automation_condition=eager(), pool="train", op_tags=model_tags("train"), kinds={"pytorch"},
    metadata=owns("adapters", "train_log"),
)  # fmt: skip
def adapters(context: dg.AssetExecutionContext, ealign: EalignResource) -> dg.MaterializeResult:
    """LoRA adapters (standard PEFT folders) for one constitution x scope, one per replicate seed
    (study.seeds), with their registry rows."""
    from ealign_dagster.training.lora import loss_chart, train_adapter

    keys = context.partition_key.keys_by_dimension
    name, scope = keys["constitution"], keys["scope"]
    rows, steps = [], []
    for seed in ealign.cfg.study.seeds:
        row, log = train_adapter(ealign.cfg, ealign.paths, ealign.store, name, scope, seed, log=context.log.info)
        rows, steps = rows + [row], steps + log
    charts = "\n\n".join(f"seed {r['seed']}:\n{loss_chart([h for h in steps if h['seed'] == r['seed']])}" for r in rows)
    return write(
        context, ealign.store, {"adapters": pl.DataFrame(rows), "train_log": pl.DataFrame(steps)},
        where={"constitution": name, "scope": scope}, version="+".join(r["sha256"][:16] for r in rows),
        inputs={"train": ealign.version("train"), "seeds": ealign.cfg.study.seeds},
        preview=["adapter_id", "seed", "steps", "train_loss", "tokens_per_s", "device", "peak_memory_mb"],
        metadata={"loss_curve": dg.MetadataValue.md(charts), "seeds": len(rows),
                  "paths": dg.MetadataValue.md("\n".join(f"- {r['path']}" for r in rows)),
                  "sha256": ", ".join(r["sha256"] for r in rows)},
    )  # fmt: skip
