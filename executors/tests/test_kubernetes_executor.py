"""The Kubernetes executor at its HTTP boundary: the official client against a fake API server
(kube_cluster.py) that records what it is asked and answers with the pod statuses and logs a
test sets; no pod runs here (test_kubernetes_builds.py runs them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.dispatch import handle, launch_request, reap
from builds.models import Build, BuildStatus
from conftest import GitRepo
from executors.base import ExecutorError
from executors.kubernetes_engine import KubernetesExecutor, pod_manifest, pod_name
from executors.launcher.agent import AGENT_SH
from executors.tests.kube_cluster import FakeCluster, serve
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = pytest.mark.django_db

YAML = """
jobs:
  main:
    image: node:22
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: k8s
      screwdriver.cd/cpu: HIGH
      screwdriver.cd/ram: 4
      screwdriver.cd/timeout: 10
    steps:
      - hello: echo hello
"""


@pytest.fixture
def cluster(settings: Any) -> Iterator[FakeCluster]:
    with serve(FakeCluster()) as state:
        settings.SD_K8S_API_URL = state.url
        settings.SD_K8S_TOKEN = "cluster-token"
        settings.SD_K8S_NAMESPACE = "builds"
        settings.SD_K8S_LAUNCHER_IMAGE = "registry.example/screwdriver-py:1.0"
        settings.SD_INSTANCE = "sd-test"
        settings.SD_API_URL = "http://sd.example:8000"
        yield state


@pytest.fixture
def build(make_repo: Callable[..., GitRepo]) -> Build:
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url,
        user=User.objects.create_user(username="alice"),
    )
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    return Build.objects.select_related("job", "event").get(event=event)


def _started(build: Build, cluster: FakeCluster) -> Build:
    state = KubernetesExecutor().start(launch_request(build, token="build-jwt"))
    Build.objects.filter(pk=build.pk).update(
        executor="k8s", executor_state=state, dispatched_at=build.created_at
    )
    build.refresh_from_db()
    return build


def test_start_creates_a_token_secret_and_then_one_restricted_pod_for_the_build(
    build: Build, cluster: FakeCluster
) -> None:
    state = KubernetesExecutor().start(launch_request(build, token="build-jwt"))
    name = f"sd-test-build-{build.pk}"
    assert state == {"pod": name, "namespace": "builds", "image": "node:22", "grace": 90}

    posts = cluster.calls("POST")
    assert [path for path, _q, _b in posts] == [
        "/api/v1/namespaces/builds/secrets",
        "/api/v1/namespaces/builds/pods",
    ]
    secret = posts[0][2]
    assert secret["metadata"]["name"] == name
    assert secret["stringData"] == {"token": "build-jwt"}

    pod = posts[1][2]
    labels = pod["metadata"]["labels"]
    assert labels == {
        "app": "screwdriver",
        "tier": "builds",
        "sdbuild": str(build.pk),
        "screwdriver.cd/instance": "sd-test",
        "screwdriver.cd/build": str(build.pk),
        "screwdriver.cd/pipeline": str(build.job.pipeline_id),
        "screwdriver.cd/job": "main",
    }
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["activeDeadlineSeconds"] == 10 * 60 + 300
    assert spec["terminationGracePeriodSeconds"] == 90
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["volumes"] == [{"name": "workspace", "emptyDir": {}}]
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (init,) = spec["initContainers"]
    assert init["image"] == "registry.example/screwdriver-py:1.0"
    assert init["command"] == [
        "python",
        "-m",
        "executors.launcher.agent",
        "/sd/workspace/.sd-agent",
    ]
    launcher, job = spec["containers"]
    assert launcher["name"] == "launcher"
    assert launcher["image"] == "registry.example/screwdriver-py:1.0"
    assert launcher["command"] == [
        "python",
        "-m",
        "executors.launcher",
        "--api-url",
        "http://sd.example:8000",
        "--build-id",
        str(build.pk),
        "--workspace",
        "/sd/workspace",
        "--agent",
        "/sd/workspace/.sd-agent",
        "--agent-timeout",
        "600",
    ]
    token_env = launcher["env"][0]
    assert token_env == {
        "name": "SD_LAUNCHER_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}},
    }
    assert "build-jwt" not in json.dumps(pod)  # the token is only in the Secret
    assert job["name"] == "build"
    assert job["image"] == "node:22"
    assert job["command"] == ["/bin/sh", "-c", AGENT_SH, "sd-agent", "/sd/workspace/.sd-agent"]
    # screwdriver.cd/cpu: HIGH is 6 CPUs; screwdriver.cd/ram: 4 is 4 GB.
    assert job["resources"] == {
        "requests": {"cpu": "6000m", "memory": "4Gi"},
        "limits": {"cpu": "6000m", "memory": "4Gi"},
    }
    for container in (init, launcher, job):
        assert container["securityContext"] == restricted
        assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/sd/workspace"}]
        assert container["imagePullPolicy"] == "IfNotPresent"


def test_a_refused_pod_is_a_permanent_error_and_leaves_nothing_behind(
    build: Build, cluster: FakeCluster
) -> None:
    cluster.refuse = 403
    with pytest.raises(ExecutorError) as caught:
        KubernetesExecutor().start(launch_request(build, token="build-jwt"))
    assert caught.value.permanent
    assert "Kubernetes refused the build's pod" in caught.value.message
    assert not cluster.pods and not cluster.secrets


def test_stop_deletes_the_pod_with_a_grace_for_teardown(build: Build, cluster: FakeCluster) -> None:
    build = _started(build, cluster)
    executor = KubernetesExecutor()
    assert executor.is_alive(handle(build))

    executor.stop(handle(build))

    pod_deletes = [(p, q) for p, q, _b in cluster.calls("DELETE") if "/pods/" in p]
    path, query = pod_deletes[-1]  # the first one was start() clearing the way
    assert path == f"/api/v1/namespaces/builds/pods/{pod_name(build.pk)}"
    assert query["gracePeriodSeconds"] == ["90"]
    assert not executor.is_alive(handle(build))


def test_a_jobs_termination_grace_sets_the_pods_bounded_by_the_operator(
    build: Build, cluster: FakeCluster, settings: Any
) -> None:
    settings.SD_MAX_TERMINATION_GRACE_SECONDS = 100
    configs = build.event.job_configs
    configs["main"][0]["annotations"]["screwdriver.cd/terminationGracePeriodSeconds"] = 80
    type(build.event).objects.filter(pk=build.event_id).update(job_configs=configs)
    build.refresh_from_db()
    request = launch_request(build, token="build-jwt")
    assert pod_manifest(request)["spec"]["terminationGracePeriodSeconds"] == 80 + 30

    build = _started(build, cluster)
    KubernetesExecutor().stop(handle(build))
    pod_deletes = [q for p, q, _b in cluster.calls("DELETE") if "/pods/" in p]
    assert pod_deletes[-1]["gracePeriodSeconds"] == ["110"]

    configs["main"][0]["annotations"]["screwdriver.cd/terminationGracePeriodSeconds"] = 900
    type(build.event).objects.filter(pk=build.event_id).update(job_configs=configs)
    build.refresh_from_db()
    request = launch_request(build, token="build-jwt")
    assert pod_manifest(request)["spec"]["terminationGracePeriodSeconds"] == 100 + 30


def test_a_disk_class_asks_for_the_ephemeral_storage_the_operator_gave_it(
    build: Build, cluster: FakeCluster, settings: Any
) -> None:
    request = launch_request(build, token="build-jwt")
    pod = pod_manifest(request)["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "build"]
    assert "ephemeral-storage" not in container["resources"]["limits"]
    assert pod["volumes"] == [{"name": "workspace", "emptyDir": {}}]

    settings.SD_K8S_DISK_LOW = "20Gi"
    settings.SD_K8S_DISK_HIGH = "100Gi"
    configs = build.event.job_configs
    configs["main"][0]["annotations"]["screwdriver.cd/disk"] = "high"
    type(build.event).objects.filter(pk=build.event_id).update(job_configs=configs)
    build.refresh_from_db()
    pod = pod_manifest(launch_request(build, token="build-jwt"))["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "build"]
    assert container["resources"]["requests"]["ephemeral-storage"] == "100Gi"
    assert container["resources"]["limits"]["ephemeral-storage"] == "100Gi"
    assert pod["volumes"] == [{"name": "workspace", "emptyDir": {"sizeLimit": "100Gi"}}]


def test_cleanup_deletes_the_pod_and_its_token_secret(build: Build, cluster: FakeCluster) -> None:
    build = _started(build, cluster)
    KubernetesExecutor().cleanup(handle(build))
    assert not cluster.pods and not cluster.secrets


def _status(cluster: FakeCluster, build: Build, status: dict[str, Any]) -> None:
    cluster.pods[pod_name(build.pk)]["status"] = status


def _waiting(name: str, image: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_a_pod_whose_image_cannot_be_pulled_fails_the_build_naming_the_image(
    build: Build, cluster: FakeCluster, settings: Any, reason: str
) -> None:
    settings.SD_EXECUTOR = "k8s"
    build = _started(build, cluster)
    _status(
        cluster,
        build,
        {
            "phase": "Pending",
            "containerStatuses": [
                _waiting("build", "node:22", reason, 'pull access denied for "node:22"')
            ],
        },
    )

    assert reap()["failed"] == 1

    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.status_message.startswith(
        f"The image 'node:22' could not be pulled ({reason}): pull access denied"
    )


def test_a_pod_that_cannot_start_a_container_fails_the_build_saying_why(
    build: Build, cluster: FakeCluster, settings: Any
) -> None:
    settings.SD_EXECUTOR = "k8s"
    build = _started(build, cluster)
    _status(
        cluster,
        build,
        {
            "phase": "Pending",
            "containerStatuses": [
                _waiting("launcher", "x", "CreateContainerConfigError", 'secret "s" not found')
            ],
        },
    )
    reap()
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.status_message == (
        "The build's pod could not start its launcher container "
        '(CreateContainerConfigError): secret "s" not found.'
    )


def test_a_failed_pod_fails_the_build_with_the_reason_and_the_launchers_last_words(
    build: Build, cluster: FakeCluster, settings: Any
) -> None:
    settings.SD_EXECUTOR = "k8s"
    build = _started(build, cluster)
    _status(cluster, build, {"phase": "Failed", "reason": "Evicted", "message": "low on memory"})
    cluster.logs[pod_name(build.pk)] = "starting\nlauncher: could not fetch what to run\n"
    reap()
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert build.status_message == (
        "Kubernetes evicted the build's pod: low on memory. "
        "The launcher said: launcher: could not fetch what to run"
    )
    (_path, query, _body) = next(c for c in cluster.calls("GET") if c[0].endswith("/log"))
    assert query["container"] == ["launcher"]


def test_a_running_pod_is_left_alone(build: Build, cluster: FakeCluster, settings: Any) -> None:
    settings.SD_EXECUTOR = "k8s"
    build = _started(build, cluster)
    _status(cluster, build, {"phase": "Running"})
    assert reap()["failed"] == 0
    assert Build.objects.get(pk=build.pk).status == BuildStatus.QUEUED
    assert pod_name(build.pk) in cluster.pods


def test_the_reaper_deletes_orphan_pods_of_its_own_instance_only(
    build: Build, cluster: FakeCluster, settings: Any
) -> None:
    settings.SD_EXECUTOR = "k8s"
    build = _started(build, cluster)

    def pod(name: str, build_id: str, instance: str) -> dict[str, Any]:
        labels = {"screwdriver.cd/instance": instance, "screwdriver.cd/build": build_id}
        return {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Running"}}

    cluster.pods["orphan"] = pod("orphan", "987654", "sd-test")
    cluster.pods["theirs"] = pod("theirs", "987654", "another-server")

    reap()

    assert set(cluster.pods) == {pod_name(build.pk), "theirs"}
    deletes = [path for path, _q, _b in cluster.calls("DELETE")]
    assert "/api/v1/namespaces/builds/pods/orphan" in deletes
    lists = [q for path, q, _b in cluster.calls("GET") if path.endswith("/pods")]
    assert lists[-1]["labelSelector"] == ["screwdriver.cd/instance=sd-test"]


def test_the_documented_rbac_grants_what_the_executor_calls() -> None:
    import yaml

    from conftest import BASE_DIR

    docs = list(yaml.safe_load_all((BASE_DIR / "deploy/kubernetes/rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    needed = {
        ("pods", "create"),
        ("pods", "get"),
        ("pods", "list"),
        ("pods", "delete"),
        ("pods/log", "get"),
        ("secrets", "create"),
        ("secrets", "delete"),
    }
    assert needed <= granted
