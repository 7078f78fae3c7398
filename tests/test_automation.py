"""Re-runs when data changes, driven by Dagster's own testing APIs: the `input_files` sensor's ticks
and automation-condition evaluation, asserting exactly which partitions are requested.

Runs are real Dagster runs on an ephemeral instance, of stand-ins that keep every asset's key,
dependencies, partitions, partition mappings, automation condition and blocking checks, with bodies
that only report success: the graph and its conditions are the project's, the work is skipped."""

import dagster as dg
import pytest

from ealign_dagster.orchestration.partitions import sync_constitutions

PER_CONSTITUTION = {"cai_revisions", "sft_datasets", "adapters"}
# Evaluation covers every model under test in one step (unchanged models come from the cache).
EVALUATION = {"eval_generations", "coherence", "judgments", "persona_responses"}
AGGREGATES = {
    "judge_agreement",
    "safety_scores",
    "emergent_alignment",
    "power",
    "persona_scores",
    "projectability",
    "report",
}
VERSIONS: dict[str, dg.DataVersion] = {}  # data versions the stand-in bodies report, per asset


@pytest.fixture
def world(assets_copy, monkeypatch):
    """Definitions over a private assets/ copy, and an instance where everything is materialized,
    observed, and every blocking check has passed."""
    monkeypatch.setenv("EALIGN_PROFILE", "tiny")
    from ealign_dagster.definitions import defs as load

    defs = _stand_ins(load())
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    sync_constitutions(instance)
    tick = _sensor(defs, instance, None)  # first tick: every input observed
    assert {e.asset_key.to_user_string() for e in tick.asset_events} == {
        "taxonomy_file",
        "constitution_files",
        "benign_prompts_file",
        "persona_item_bank",
        "coherence_reference_file",
        "prompt_source_files",
    }
    for e in tick.asset_events:
        instance.report_runless_asset_event(e)
    for key in graph.materializable_asset_keys:
        pdef = graph.get(key).partitions_def
        for p in pdef.get_partition_keys(dynamic_partitions_store=instance) if pdef else [None]:
            if graph.get(key).check_keys:
                _run(defs, instance, key, p)  # blocking checks need real check executions
            else:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=p))
    cursor = None
    for _ in range(3):  # settle: nothing is missing, nothing changed
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert result.total_requested == 0
        cursor = result.cursor
    return {
        "defs": defs,
        "graph": graph,
        "instance": instance,
        "cursor": cursor,
        "sensor_cursor": tick.cursor,
        "assets": assets_copy,
    }


def _sensor(defs, instance, cursor):
    from ealign_dagster.orchestration.automation import input_files

    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    return input_files(ctx)


def _stand_ins(defs: dg.Definitions) -> dg.Definitions:
    """The same graph with bodies that succeed at once (checks pass); sources kept as they are."""
    assets = []
    check_defs = [*(defs.asset_checks or []), *(a for a in defs.assets if isinstance(a, dg.AssetChecksDefinition))]
    seen = set()
    for ad in defs.assets:
        if isinstance(ad, dg.AssetChecksDefinition) or id(ad) in seen:  # modules import each other's assets
            continue
        seen.add(id(ad))
        if not isinstance(ad, dg.AssetsDefinition) or not ad.is_materializable:
            assets.append(ad)
            continue

        @dg.multi_asset(
            specs=list(ad.specs),
            check_specs=list(ad.check_specs),
            can_subset=True,
            name="stand_in_" + "_".join(k.to_python_identifier() for k in ad.keys),
        )
        def body(context: dg.AssetExecutionContext):
            for key in context.selected_asset_keys:  # a data version of the test's choosing, else a new one
                yield dg.MaterializeResult(asset_key=key, data_version=VERSIONS.get(key.to_user_string()))
            for ck in context.selected_asset_check_keys:
                yield dg.AssetCheckResult(asset_key=ck.asset_key, check_name=ck.name, passed=True)

        assets.append(body)
    checks = []
    for cd in {id(c): c for c in check_defs}.values():

        @dg.multi_asset_check(specs=list(cd.check_specs), can_subset=True, name="stand_in_" + cd.node_def.name)
        def check_body(context: dg.AssetCheckExecutionContext):
            for ck in context.selected_asset_check_keys:
                yield dg.AssetCheckResult(asset_key=ck.asset_key, check_name=ck.name, passed=True)

        checks.append(check_body)
    return dg.Definitions(assets=assets, asset_checks=checks, sensors=defs.sensors, resources=defs.resources)


def _run(defs, instance, key, partition):
    """A real run of one asset partition with its checks."""
    result = dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=[key],
        partition_key=partition,
        instance=instance,
        raise_on_error=True,
        resources=defs.resources,
    )
    assert result.success


def _drain(world) -> set[tuple[str, str | None]]:
    """Tick the automation until quiet, 'running' whatever each tick requests; all requests."""
    graph, instance, defs = world["graph"], world["instance"], world["defs"]
    requested = set()
    for _ in range(20):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=world["cursor"])
        world["cursor"] = result.cursor
        if result.total_requested == 0:
            return requested
        for key in graph.materializable_asset_keys:
            for p in result.get_requested_partitions(key):
                requested.add((key.to_user_string(), str(p) if p is not None else None))
                _run(defs, instance, key, p)
    raise AssertionError("automation never settled")


def _edit_and_observe(world, path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    tick = _sensor(world["defs"], world["instance"], world["sensor_cursor"])
    world["sensor_cursor"] = tick.cursor
    for e in tick.asset_events:
        world["instance"].report_runless_asset_event(e)
    return tick


def test_editing_one_constitution_requests_exactly_its_partitions(world):
    tick = _edit_and_observe(world, world["assets"] / "constitutions" / "virtue.yaml", "title: ", "title: Revised ")
    assert [(e.asset_key.to_user_string(), e.partition) for e in tick.asset_events] == [
        ("constitution_files", "virtue")
    ]
    requested = _drain(world)
    scopes = ["broad", "narrow_harassment", "narrow_illegal"]
    expected = {("cai_revisions", "virtue")}
    expected |= {(a, f"virtue|{s}") for a in PER_CONSTITUTION - {"cai_revisions"} for s in scopes}
    expected |= {(a, None) for a in EVALUATION | AGGREGATES | {"persona_validation"}}
    assert requested == expected
    # re-observing unchanged files reports nothing and requests nothing
    tick = _sensor(world["defs"], world["instance"], world["sensor_cursor"])
    assert tick.asset_events == [] and _drain(world) == set()


def test_editing_the_item_bank_reruns_only_persona_scoring(world):
    tick = _edit_and_observe(
        world,
        world["assets"] / "persona" / "items.yaml",
        "Some actions are wrong in themselves",
        "Some actions are simply wrong in themselves",
    )
    assert [e.asset_key.to_user_string() for e in tick.asset_events] == ["persona_item_bank"]
    requested = _drain(world)
    assert requested == {
        (a, None) for a in ("persona_responses", "persona_validation", "persona_scores", "projectability", "report")
    }


def test_editing_the_reference_answers_reruns_only_coherence_and_what_reads_it(world):
    tick = _edit_and_observe(
        world, world["assets"] / "coherence" / "reference_answers.yaml", 'answer: "Put the egg', 'answer: "Gently put the egg',
    )  # fmt: skip
    assert [e.asset_key.to_user_string() for e in tick.asset_events] == ["coherence_reference_file"]
    assert _drain(world) == {(a, None) for a in ("coherence", "safety_scores", "report")}


def test_editing_the_taxonomy_reruns_splits_and_everything_below(world):
    _edit_and_observe(world, world["assets"] / "taxonomy.yaml", "General harm (", "General harms (")
    requested = {a for a, _ in _drain(world)}
    assert {
        "prompts",
        "splits",
        "initial_responses",
        "cai_revisions",
        "sft_datasets",
        "adapters",
    } | EVALUATION | AGGREGATES <= requested
    # nothing that does not read the taxonomy's consequences
    assert not requested & {"base_model", "judge_validation", "persona_validation"}, requested


def test_a_new_constitution_file_becomes_a_partition_and_its_chain_runs(world):
    src = (world["assets"] / "constitutions" / "virtue.yaml").read_text()
    (world["assets"] / "constitutions" / "care.yaml").write_text(src.replace("name: virtue", "name: care", 1))
    tick = _sensor(world["defs"], world["instance"], world["sensor_cursor"])
    assert [r.partition_keys for r in tick.dynamic_partitions_requests] == [["care"]]
    world["instance"].add_dynamic_partitions("constitution", ["care"])  # what the daemon does with the request
    tick = _sensor(world["defs"], world["instance"], tick.cursor)  # next tick observes the new partition
    assert [(e.asset_key.to_user_string(), e.partition) for e in tick.asset_events] == [("constitution_files", "care")]
    for e in tick.asset_events:
        world["instance"].report_runless_asset_event(e)
    requested = _drain(world)
    partitioned = {(a, p) for a, p in requested if p is not None}
    assert partitioned == {("cai_revisions", "care")} | {
        (a, f"care|{s}")
        for a in PER_CONSTITUTION - {"cai_revisions"}
        for s in ("broad", "narrow_harassment", "narrow_illegal")
    }
    assert {a for a, p in requested if p is None} == EVALUATION | AGGREGATES | {"persona_validation"}


def test_a_removed_constitution_retires_its_partition_and_reevaluates(world):
    """Deleting deontology.yaml: the sensor retires its partition (later runs no longer include it;
    before, every run with cai_revisions failed on the missing file) and re-runs the evaluation, whose
    models under test no longer include deontology's adapters; nothing else is requested."""
    (world["assets"] / "constitutions" / "deontology.yaml").unlink()
    tick = _sensor(world["defs"], world["instance"], world["sensor_cursor"])
    assert [(type(r).__name__, r.partition_keys) for r in tick.dynamic_partitions_requests] == [
        ("DeleteDynamicPartitionsRequest", ["deontology"])
    ]
    assert [sorted(k.to_user_string() for k in r.asset_selection) for r in tick.run_requests] == [
        ["eval_generations", "persona_responses"]
    ]
    world["instance"].delete_dynamic_partition("constitution", "deontology")  # what the daemon does
    for r in tick.run_requests:
        for key in r.asset_selection:
            _run(world["defs"], world["instance"], key, None)
    requested = _drain(world)
    assert {a for a, _ in requested} <= EVALUATION | AGGREGATES and all(p is None for _, p in requested)
    from ealign_dagster.orchestration.partitions import sync_constitutions

    assert sync_constitutions(world["instance"]) == []  # nothing left to add or retire


def test_a_broken_file_is_named_and_nothing_is_observed(world):
    path = world["assets"] / "constitutions" / "deontology.yaml"
    path.write_text(path.read_text().replace("framework:", "framwork:", 1))
    tick = _sensor(world["defs"], world["instance"], world["sensor_cursor"])
    assert isinstance(tick, dg.SkipReason) and "deontology.yaml" in tick.skip_message
    assert _drain(world) == set()


def _nightly_requests(cron_line: str, assets_copy, monkeypatch) -> list[set[str]]:
    """What the project's evaluation condition requests on ticks now, +1 h, +1 h 1 min, +1 day, +1 day 1 min,
    for an evaluation asset and an eager aggregate below it, both materialized (requests succeed)."""
    from datetime import datetime, timedelta

    prof = assets_copy / "profiles" / "tiny.yaml"
    prof.write_text(prof.read_text().replace("nightly_cron: null", cron_line))
    monkeypatch.setenv("EALIGN_PROFILE", "tiny")
    from ealign_dagster.orchestration.automation import eager, evaluation

    @dg.asset(automation_condition=evaluation())
    def answers(): ...

    @dg.asset(deps=[answers], automation_condition=eager())
    def rates(): ...

    instance = dg.DagsterInstance.ephemeral()
    for key in ("answers", "rates"):
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    now, cursor, out = datetime.now().astimezone(), None, []
    for dt in (timedelta(0), timedelta(hours=1), timedelta(hours=1, minutes=1), timedelta(days=1),
               timedelta(days=1, minutes=1)):  # fmt: skip
        r = dg.evaluate_automation_conditions([answers, rates], instance, evaluation_time=now + dt, cursor=cursor)
        cursor = r.cursor
        out.append({k for k in ("answers", "rates") if r.get_num_requested(dg.AssetKey(k))})
        for key in out[-1]:  # the requested run succeeds
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
    return out


def test_nightly_evaluation_reruns_after_each_cron_tick(assets_copy, monkeypatch):
    """With eval.nightly_cron the evaluation assets are requested once after each tick of the cron
    (and not again until the next), with what is below them in the same run."""
    ticks = _nightly_requests('nightly_cron: "0 * * * *"', assets_copy, monkeypatch)
    assert ticks == [set(), {"answers", "rates"}, set(), {"answers", "rates"}, set()]


def test_no_nightly_evaluation_without_a_cron(assets_copy, monkeypatch):
    assert _nightly_requests("nightly_cron: null", assets_copy, monkeypatch) == [set()] * 5


def test_evaluation_assets_carry_the_evaluation_condition():
    from ealign_dagster.definitions import defs

    graph = defs().resolve_asset_graph()
    for key in EVALUATION:
        assert graph.get(dg.AssetKey(key)).automation_condition.get_label().startswith("eager"), key


def test_same_training_pool_requests_only_the_evaluation(world, monkeypatch):
    """`splits` re-materialized with the same data version (its training pool's hash: a benchmark was
    added or resized) requests the evaluation and nothing of the training chain (before: initial
    answers, SFT data and adapters ran again); a new training pool requests the whole chain."""
    scopes = ["broad", "narrow_harassment", "narrow_illegal"]

    def splits_at(version):
        monkeypatch.setitem(VERSIONS, "splits", dg.DataVersion(version))
        for scope in scopes:
            _run(world["defs"], world["instance"], dg.AssetKey("splits"), scope)
        return {a for a, _ in _drain(world)}

    training = {"initial_responses", "cai_revisions", "sft_datasets", "adapters"}
    assert training <= splits_at("pool-1")  # a new pool: everything below runs
    again = splits_at("pool-1")
    # the answers to the evaluation set and what is computed from them; the persona instrument and the
    # training chain do not read splits' new rows
    assert again == {"eval_generations", "coherence", "judgments", "judge_agreement", "safety_scores",
                     "emergent_alignment", "power", "report"}, again  # fmt: skip
    assert training <= splits_at("pool-2")
