"""What keeps the graph current on its own (with `ealign ui`, whose daemon runs these):

- `input_files` observes `assets/` every 30 s: a file whose bytes changed gets a new observation (a
  new data version) and a new constitution file gets a partition. Nothing is reported for files that
  did not change, so nothing downstream of them is requested.
- `ealign_automation` evaluates every asset's automation condition (see ealign_dagster/automation.py)
  and launches the runs they request."""

import json

import dagster as dg

from ealign_dagster.partitions import CONSTITUTIONS
from ealign_dagster.resources import ProfileResource

DATA_VERSION_TAG = "dagster/data_version"  # the tag observable source assets record their version under


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def input_files(context: dg.SensorEvaluationContext, profile: ProfileResource):
    """Observe changed input files; register new constitution files as partitions."""
    from ealign_dagster.inputs import InputError
    from ealign_dagster.observe import all_versions

    try:
        versions = all_versions(profile.load())
    except InputError as e:  # a half-edited file: say which, change nothing, look again next tick
        return dg.SkipReason(f"not observing until this is fixed: {e}")
    seen = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(CONSTITUTIONS.name))
    new = sorted({part for (asset, part) in versions if asset == "constitution_files"} - known)
    events = []
    for (asset, part), version in sorted(versions.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if asset == "constitution_files" and part not in known:
            continue  # observed on the next tick, once its partition exists
        key = f"{asset}[{part}]" if part else asset
        if seen.get(key) != version:
            events.append(dg.AssetObservation(asset_key=asset, partition=part, tags={DATA_VERSION_TAG: version}))
            seen[key] = version
    if events:
        context.log.info(f"observed new versions: {', '.join(e.asset_key.to_user_string() + (f'[{e.partition}]' if e.partition else '') for e in events)}")
    return dg.SensorResult(
        asset_events=events,
        dynamic_partitions_requests=[CONSTITUTIONS.build_add_request(new)] if new else [],
        cursor=json.dumps(seen, sort_keys=True),
    )


ealign_automation = dg.AutomationConditionSensorDefinition(
    "ealign_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
