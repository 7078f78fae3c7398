"""Automation in one place: conditions, the input-file sensor and the automation sensor (all run by
the daemon of `ealign ui`).

Every asset is eager: it runs when something it depends on changes (an input file's new version,
an upstream partition's new materialization) and only for the partitions that change touches
(editing one constitution touches only its partitions), never while a dependency is missing or
running, and only once the blocking checks of its dependencies have passed. The evaluation assets
can also re-run on a cron schedule (`eval.nightly_cron` in the profile), e.g. to re-query an endpoint.
"""

from __future__ import annotations

import json
import os

import dagster as dg

from ealign_dagster.orchestration.partitions import CONSTITUTIONS
from ealign_dagster.orchestration.resources import EalignResource
from ealign_dagster.orchestration.write import DATA_VERSION_TAG


def eager() -> dg.AutomationCondition:
    return (dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager, after upstream blocking checks pass"
    )


def on_training_data() -> dg.AutomationCondition:
    """Eager, except that a dependency counts as changed only when its data version did: the first
    steps of the training chain after `splits`, whose data version is the training pool's hash, so a
    `splits` re-materialized with the same training rows (a benchmark added or resized) requests no
    training, only the evaluation."""
    changed = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed())
    return eager().replace("any_deps_updated", changed.with_label("any_deps_data_version_changed"))


def nightly_cron() -> str | None:
    """The profile's `eval.nightly_cron` (profile from EALIGN_PROFILE, as the `ealign` resource reads it)."""
    from ealign_dagster.core.config import load_profile

    try:
        return load_profile(os.environ.get("EALIGN_PROFILE", "demo")).eval.nightly_cron
    except Exception:  # a broken profile must not break loading the code location; runs report it
        return None


def evaluation() -> dg.AutomationCondition:
    """Eager, plus a re-run on every tick of the profile's nightly cron, if it sets one."""
    cron = nightly_cron()
    if not cron:
        return eager()
    return (
        eager()
        | (dg.AutomationCondition.cron_tick_passed(cron).since_last_handled() & ~dg.AutomationCondition.in_progress())
    ).with_label(f"eager or nightly ({cron})")


# What a retired constitution changes without a new version upstream: the set of models under test.
REEVALUATE = ["eval_generations", "persona_responses"]


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING, target=REEVALUATE)
def input_files(context: dg.SensorEvaluationContext, ealign: EalignResource):
    """Observe changed input files; register new constitution files as partitions; retire the
    partitions of removed ones and re-evaluate without their adapters."""
    from ealign_dagster.core.schemas import InputError
    from ealign_dagster.inputs.versions import all_versions

    try:
        versions = all_versions(ealign.cfg)
    except InputError as e:  # a half-edited file: say which, change nothing, look again next tick
        return dg.SkipReason(f"not observing until this is fixed: {e}")
    seen = json.loads(context.cursor) if context.cursor else {}
    from ealign_dagster.orchestration.partitions import partition_changes

    known = set(context.instance.get_dynamic_partitions(CONSTITUTIONS.name))
    new, retired = partition_changes(known)
    events = []
    for (asset, part), version in sorted(versions.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if asset == "constitution_files" and part not in known:
            continue  # observed on the next tick, once its partition exists
        key = f"{asset}[{part}]" if part else asset
        if seen.get(key) != version:
            events.append(dg.AssetObservation(asset_key=asset, partition=part, tags={DATA_VERSION_TAG: version}))
            seen[key] = version
    if events:
        names = [e.asset_key.to_user_string() + (f"[{e.partition}]" if e.partition else "") for e in events]
        context.log.info(f"observed new versions: {', '.join(names)}")
    return dg.SensorResult(
        asset_events=events,
        dynamic_partitions_requests=[CONSTITUTIONS.build_add_request(new)] * bool(new)
        + [CONSTITUTIONS.build_delete_request(retired)] * bool(retired),
        run_requests=[
            dg.RunRequest(
                run_key=f"retired:{','.join(retired)}:{context.cursor}",
                asset_selection=[dg.AssetKey(k) for k in REEVALUATE],
            )
        ]
        * bool(retired),  # fmt: skip
        cursor=json.dumps(seen, sort_keys=True),
    )


ealign_automation = dg.AutomationConditionSensorDefinition(
    "ealign_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
