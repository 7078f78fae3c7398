"""Versioned inputs under `assets/`, observed by Dagster (data version = content hash, validated on
observation): the taxonomy, one partition per constitution file, the look-alike prompts, the persona
item bank, the coherence reference answers and the files behind the profile's prompt sources."""

from collections import Counter

import dagster as dg

from ealign_dagster.inputs import versions
from ealign_dagster.orchestration.partitions import CONSTITUTIONS
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import counts_md

GROUP = "inputs"


@dg.observable_source_asset(group_name=GROUP)
def taxonomy_file() -> dg.ObserveResult:
    """assets/taxonomy.yaml: categories, scopes and the held-out map."""
    from ealign_dagster.core.schemas import load_taxonomy

    taxonomy = load_taxonomy()
    return dg.ObserveResult(
        data_version=dg.DataVersion(versions.taxonomy_version()),
        metadata={"categories": len(taxonomy.categories), "scopes": ", ".join(taxonomy.scopes)},
    )


@dg.observable_source_asset(group_name=GROUP, partitions_def=CONSTITUTIONS)
def constitution_files(context) -> dg.DataVersionsByPartition:
    """assets/constitutions/<name>.yaml, one partition per file (and the control arms': the
    no-constitution file under assets/controls/, a constant for the initial-answer arm): editing one
    constitution changes only its own partition's version."""
    known = set(context.instance.get_dynamic_partitions(CONSTITUTIONS.name))
    return dg.DataVersionsByPartition({k: v for k, v in versions.constitution_versions().items() if k in known})


@dg.observable_source_asset(group_name=GROUP)
def benign_prompts_file() -> dg.ObserveResult:
    """assets/benign/lookalikes.yaml: safe prompts that resemble harmful ones (over-refusal control)."""
    from ealign_dagster.core.schemas import load_benign

    prompts = load_benign().prompts
    return dg.ObserveResult(
        data_version=dg.DataVersion(versions.benign_version()),
        metadata={"prompts": len(prompts), "by_category": counts_md(Counter(p.resembles for p in prompts))},
    )


@dg.observable_source_asset(group_name=GROUP)
def persona_item_bank() -> dg.ObserveResult:
    """assets/persona/items.yaml: the ethical-persona Likert items."""
    from ealign_dagster.core.schemas import load_item_bank

    items = load_item_bank().items
    return dg.ObserveResult(
        data_version=dg.DataVersion(versions.item_bank_version()),
        metadata={"items": len(items), "by_subscale": counts_md(Counter(i.subscale for i in items))},
    )


@dg.observable_source_asset(group_name=GROUP)
def coherence_reference_file() -> dg.ObserveResult:
    """assets/coherence/reference_answers.yaml: benign questions with short reference answers (coherence)."""
    from ealign_dagster.evaluation.coherence import reference_items

    items, version = reference_items()
    return dg.ObserveResult(data_version=dg.DataVersion(version),
                            metadata={"items": items.height, "topics": items["topic"].n_unique()})  # fmt: skip


@dg.observable_source_asset(group_name=GROUP)
def prompt_source_files(ealign: EalignResource) -> dg.ObserveResult:
    """The files behind the profile's prompt sources (benchmark packs, local files)."""
    by_source = versions.source_versions(ealign.cfg)
    return dg.ObserveResult(
        data_version=dg.DataVersion(versions.prompt_sources_version(ealign.cfg)),
        metadata={"sources": counts_md(by_source, "source", "version")},
    )
