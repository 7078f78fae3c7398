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
