"""Step placement as dagster-k8s renders it: the Kubernetes Job that `k8s_job_executor` (configured
by EALIGN_EXECUTOR=k8s) would create for a step, built by dagster-k8s's own code, without a cluster."""

import json

import dagster as dg
import pytest

from ealign_dagster.orchestration import placement

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""
IMAGE, HOME, CLAIM = "registry.example.org/ealign:0.1.0", "/mnt/ealign", "ealign-home"


@pytest.fixture
def k8s_env(monkeypatch, tmp_path):
    for k, v in {"EALIGN_EXECUTOR": "k8s", "EALIGN_IMAGE": IMAGE, "EALIGN_HOME": HOME, "EALIGN_HOME_CLAIM": CLAIM,
                 "EALIGN_PROFILE": "paper"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    return kubeconfig


def step_pod(kubeconfig, op_tags: dict) -> dict:
    """The pod spec of the step Job: the executor the Definitions use, merged with the step's op tags
    as K8sStepHandler does, rendered by construct_dagster_k8s_job, with the Helm chart's run launcher."""
    import kubernetes
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.executor.init import InitExecutorContext
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

    from ealign_dagster.definitions import executor

    executor_def = executor()
    config = executor_def.config_schema.resolve_config({}).value["config"]  # validated by dagster-k8s's schema
    local = {"load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}  # outside a cluster

    @dg.op
    def noop(): ...

    @dg.job
    def one_step():
        noop()

    init = InitExecutorContext(job=InMemoryJob(one_step), executor_def=executor_def, executor_config={**config, **local},
                               instance=dg.DagsterInstance.ephemeral())  # fmt: skip
    handler = executor_def.executor_creation_fn(init)._step_handler
    context = handler._executor_container_context.merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags))
    )
    launcher = K8sRunLauncher(
        service_account_name="dagster", instance_config_map="dagster-instance", dagster_home="/opt/dagster/dagster_home",
        postgres_password_secret="dagster-postgresql-secret", **local,
    )  # fmt: skip
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(handler._executor_image, launcher), args=["dagster", "api", "execute_step"],
        job_name="dagster-step-adapters", component="step_worker", user_defined_k8s_config=context.run_k8s_config,
    )  # fmt: skip
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)["spec"]["template"]["spec"]


def test_training_step_pod_gets_a_gpu_the_image_and_the_home(k8s_env):
    from ealign_dagster.training.assets import adapters

    pod = step_pod(k8s_env, adapters.op.tags)
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"nvidia.com/gpu": "1"}
    assert container["image"] == IMAGE
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EALIGN_HOME"] == HOME and env["EALIGN_PROFILE"] == "paper"
    assert {"name": "ealign-home", "mountPath": HOME} in container["volumeMounts"]
    assert {"name": "ealign-home", "persistentVolumeClaim": {"claimName": CLAIM}} in pod["volumes"]


def test_other_steps_ask_for_no_gpu(k8s_env):
    from ealign_dagster.splits.assets import splits

    (container,) = step_pod(k8s_env, splits.op.tags)["containers"]
    assert "nvidia.com/gpu" not in json.dumps(container.get("resources") or {})
    assert container["image"] == IMAGE


def test_k8s_executor_names_what_it_misses(monkeypatch):
    monkeypatch.setenv("EALIGN_EXECUTOR", "k8s")
    monkeypatch.delenv("EALIGN_IMAGE", raising=False)
    from ealign_dagster.definitions import executor

    with pytest.raises(ValueError, match="EALIGN_IMAGE"):
        executor()


def test_gpu_count_follows_the_cluster():
    """The same tags drive both engines: Ray reads num_gpus from `dagster-ray/config`; with no GPU on
    the cluster a model step asks Ray and Kubernetes for none."""
    from dagster_ray.configs import RayExecutionConfig

    assert RayExecutionConfig.from_tags(placement.gpu_tags(1)).num_gpus == 1
    assert RayExecutionConfig.from_tags(placement.gpu_tags(0)).num_gpus == 0
    assert json.loads(placement.gpu_tags(0)[placement.K8S_TAG]) == {}


def test_steps_whose_model_is_on_an_endpoint_ask_for_no_gpu():
    """The paper profile serves the teacher and the evaluation model from endpoints: the steps that only
    call them ask for no GPU; training, the local student's generation and coherence scoring do. On
    the tiny profile (every model local) every model step asks for one."""
    from dagster_ray.configs import RayExecutionConfig

    from ealign_dagster.core.config import load_profile

    def gpus(role, profile):
        return RayExecutionConfig.from_tags(placement.model_tags(role, load_profile(profile))).num_gpus

    paper = {r: gpus(r, "paper") for r in ("train", "student", "teacher", "eval", "scoring")}
    assert paper == {"train": 1, "student": 1, "teacher": 0, "eval": 0, "scoring": 1}
    assert {gpus(r, "tiny") for r in ("train", "student", "teacher", "eval", "scoring")} == {1}


TAGS_OF_THE_MODEL_STEPS = """
import json
import dagster as dg
from ealign_dagster.definitions import stage_modules
from ealign_dagster.orchestration import placement
steps = {"adapters", "initial_responses", "cai_revisions", "eval_generations", "coherence", "persona_responses",
         "persona_validation"}
assets = [a for a in dg.load_assets_from_modules(stage_modules()) if isinstance(a, dg.AssetsDefinition)]
print(json.dumps({a.key.to_user_string(): {k: a.op.tags.get(k) for k in (placement.K8S_TAG, placement.RAY_TAG)}
                  for a in assets if a.key.to_user_string() in steps}))
"""


def test_each_model_step_reads_its_own_model(k8s_env):
    """The definitions, loaded as a step process loads them with EALIGN_PROFILE=paper, tag each model
    step by the model it loads; the training pod gets a GPU, the evaluation pod none."""
    import os
    import subprocess
    import sys

    from ealign_dagster.core.config import load_profile

    out = subprocess.run([sys.executable, "-c", TAGS_OF_THE_MODEL_STEPS], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "EALIGN_EXECUTOR"})  # fmt: skip
    tags = json.loads(out.stdout.strip().splitlines()[-1])
    roles = {"adapters": "train", "initial_responses": "student", "cai_revisions": "teacher",
             "eval_generations": "eval", "coherence": "scoring", "persona_responses": "eval",
             "persona_validation": "eval"}  # fmt: skip
    assert set(tags) == set(roles)
    for step, role in roles.items():
        assert tags[step] == placement.model_tags(role, load_profile("paper")), step
    assert "nvidia.com/gpu" not in json.dumps(step_pod(k8s_env, tags["eval_generations"])["containers"][0])
    assert "nvidia.com/gpu" in json.dumps(step_pod(k8s_env, tags["adapters"])["containers"][0])
