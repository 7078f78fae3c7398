"""Where steps run, in one place: what each kind of step asks of a cluster.

Model steps (training, local generation) ask for a GPU: on Kubernetes through dagster-k8s's
`dagster-k8s/config` op tag (the step pod's resource requests and limits), on Ray through
dagster-ray's `dagster-ray/config` op tag (the step job's `num_gpus`). Every step, model steps
included, asks Ray for `RAY_STEP_CPUS` CPUs through the executor's config, so Ray never runs more
steps on a node than it has CPUs. `EALIGN_STEP_GPUS` sets the GPUs of a model step (default 1);
`ealign run --executor ray` sets it to 0 on a cluster without GPUs, where a GPU request would wait
forever. A generation step whose model the profile serves from an endpoint asks for no GPU.
"""

from __future__ import annotations

import json
import os

K8S_TAG = "dagster-k8s/config"
RAY_TAG = "dagster-ray/config"
GPUS_ENV = "EALIGN_STEP_GPUS"
RAY_STEP_CPUS = 1


def step_gpus() -> int:
    """GPUs a model step asks for."""
    return int(os.environ.get(GPUS_ENV, "1"))


def gpu_tags(gpus: int | None = None) -> dict[str, str]:
    """Op tags of a model step: `gpus` GPUs (default: `step_gpus()`) on Kubernetes and on Ray."""
    n = step_gpus() if gpus is None else gpus
    gpu = {"nvidia.com/gpu": str(n)} if n else {}  # Kubernetes wants a GPU in limits; requests, if set, equal them
    k8s = {"container_config": {"resources": {"requests": gpu, "limits": gpu}}} if n else {}
    return {K8S_TAG: json.dumps(k8s), RAY_TAG: json.dumps({"num_gpus": n})}


def loads_weights(role: str, profile=None) -> bool:
    """Does a step of this role load a model here, in the profile (default: EALIGN_PROFILE's)?
    'train': always; 'student' / 'teacher': that model's backend is local; 'eval': the evaluation model
    (eval.model, else the student) is local; 'scoring': either is (coherence scores on local weights)."""
    if role == "train":
        return True
    if profile is None:
        from ealign_dagster.core.config import load_profile

        try:
            profile = load_profile(os.environ.get("EALIGN_PROFILE", "demo"))
        except Exception:  # no readable profile: ask for what a local model needs
            return True
    local = {"student": profile.student.backend == "local", "teacher": profile.teacher.backend == "local"}
    local["eval"] = (profile.eval.model or profile.student).backend == "local"
    local["scoring"] = local["eval"] or local["student"]
    return local[role]


def model_tags(role: str, profile=None) -> dict[str, str]:
    """Op tags of a step that trains or generates with `role`'s model: a GPU where the model runs
    locally, none where an endpoint serves it (a GPU request would hold a GPU the step never uses)."""
    return gpu_tags(None if loads_weights(role, profile) else 0)


def k8s_executor_config(image: str, home: str, claim: str) -> dict:
    """Config of dagster-k8s's `k8s_job_executor`: every step pod runs `image`, with the run home
    mounted at `home` from the PersistentVolumeClaim `claim` (ReadWriteMany: every pod reaches it)
    and the run's profile."""
    return {
        "job_image": image,
        "env_vars": [f"EALIGN_HOME={home}", "EALIGN_PROFILE"],  # a bare name: the run pod's value
        "volume_mounts": [{"name": "ealign-home", "mountPath": home}],
        "volumes": [{"name": "ealign-home", "persistentVolumeClaim": {"claimName": claim}}],
    }


def k8s_executor():
    """`k8s_job_executor` configured from EALIGN_IMAGE, EALIGN_HOME and EALIGN_HOME_CLAIM."""
    from dagster_k8s import k8s_job_executor

    missing = [v for v in ("EALIGN_IMAGE", "EALIGN_HOME", "EALIGN_HOME_CLAIM") if not os.environ.get(v)]
    if missing:
        raise ValueError(f"EALIGN_EXECUTOR=k8s needs {', '.join(missing)} (the step image, the home's mount "
                         "path, its PersistentVolumeClaim)")  # fmt: skip
    env = os.environ
    return k8s_job_executor.configured(
        k8s_executor_config(env["EALIGN_IMAGE"], env["EALIGN_HOME"], env["EALIGN_HOME_CLAIM"])
    )
