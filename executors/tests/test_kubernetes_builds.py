"""Builds on the Kubernetes executor with pods that really run: the fake cluster's kubelet
(kube_cluster.py) runs the pod spec as the executor wrote it, the launcher container as this
checkout's Python in bubblewrap and the build container on the real Docker engine.

The server and worker are the usual test stack; the worker's executor talks to the fake API
server, and the pod's launcher to the stack's live server, over HTTP.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from builds.dispatch import handle
from builds.models import Build, BuildStatus, Step
from builds.tests.step_logs import step_log
from conftest import GitRepo, wait_until
from executors.kubernetes_engine import WORKSPACE, KubernetesExecutor
from executors.tests.docker_engine import docker_engine
from executors.tests.kube_cluster import (
    FakeCluster,
    Kubelet,
    node_mount_points,
    serve,
    why_no_kubelet,
)
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Any name will do: the kubelet runs containers of this image as this checkout's Python.
LAUNCHER_IMAGE = "sd-test-launcher:1"
# A root kubelet runs the pod as the restricted standard wants; another can only be itself.
POD_USER = 1000 if os.geteuid() == 0 else os.geteuid()
ALICE = Creator("Alice", "alice")


@pytest.fixture
def repos() -> Iterator[Path]:
    """A folder of repositories the pods' user can reach (pytest's folders are its user's
    alone), as a cluster's pods reach their repositories over the network."""
    folder = Path(tempfile.mkdtemp(prefix="sd-k8s-repos-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def kube(busybox_image: str, tmp_path: Path, repos: Path) -> Iterator[FakeCluster]:
    """The fake cluster, its kubelet running pods on this machine."""
    why = why_no_kubelet()
    if why is not None:
        pytest.skip(why)
    node_mount_points([WORKSPACE])
    node = tmp_path / "node"
    node.mkdir()
    # The launcher image's git clones the test's repositories, which another user owns.
    gitconfig = repos / ".gitconfig"
    gitconfig.write_text("[safe]\n\tdirectory = *\n")
    gitconfig.chmod(0o644)
    cluster = FakeCluster()
    Kubelet(
        cluster,
        launcher_image=LAUNCHER_IMAGE,
        engine=docker_engine(),
        node_dir=node,
        launcher_env={"GIT_CONFIG_GLOBAL": str(gitconfig)},
    )
    with serve(cluster):
        yield cluster


@pytest.fixture
def stack_env(kube: FakeCluster, settings: Any) -> dict[str, str]:
    """The worker runs `k8s` jobs in the fake cluster, under an instance label of its own;
    so does this process."""
    env = {
        "SD_EXECUTORS": "k8s",
        "SD_INSTANCE": f"sdtest-{uuid.uuid4().hex[:10]}",
        "SD_K8S_API_URL": kube.url,
        "SD_K8S_NAMESPACE": "builds",
        "SD_K8S_LAUNCHER_IMAGE": LAUNCHER_IMAGE,
        "SD_K8S_RUN_AS_USER": str(POD_USER),
        "SD_K8S_AGENT_TIMEOUT_SECONDS": "60",
    }
    settings.SD_EXECUTORS = ["k8s"]
    settings.SD_INSTANCE = env["SD_INSTANCE"]
    settings.SD_K8S_API_URL = kube.url
    settings.SD_K8S_NAMESPACE = "builds"
    settings.SD_K8S_LAUNCHER_IMAGE = LAUNCHER_IMAGE
    settings.SD_K8S_RUN_AS_USER = POD_USER
    return env


@pytest.fixture
def pod_repo(
    make_repo: Callable[..., GitRepo], settings: Any, repos: Path
) -> Callable[[dict[str, str]], GitRepo]:
    """A repository in the folder the pods can reach."""
    settings.SD_LOCAL_REPO_ROOTS = [*settings.SD_LOCAL_REPO_ROOTS, str(repos)]

    def make(files: dict[str, str]) -> GitRepo:
        repo = make_repo(files)
        bare = repos / repo.bare.name
        shutil.copytree(repo.bare, bare, symlinks=True)
        # Tests run under umask 077: let the pod's user read it (go+rX).
        for path in [bare, *bare.rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode | (0o055 if path.is_dir() else 0o044))
        return GitRepo(bare=bare, work=repo.work)

    return make


def finished(event: Event, kube: FakeCluster, status: str = BuildStatus.SUCCESS) -> Build:
    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        return build if build is not None and build.is_finished else None

    build = wait_until(done, timeout=120, what="the build to finish")
    steps = {s.name: (s.code, step_log(build, s.name)) for s in Step.objects.filter(build=build)}
    assert kube.kubelet is not None
    logs = kube.kubelet.all_logs()
    assert build.status == status, (build.status_message, steps, logs)
    assert build.executor == "k8s"
    return build


def pipeline_of(yaml: str, pod_repo: Callable[[dict[str, str]], GitRepo]) -> Pipeline:
    alice = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = pod_repo({"screwdriver.yaml": yaml})
    return create_pipeline(checkout_url=repo.checkout_url, user=alice)


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


ARTIFACTS = """
jobs:
  main:
    image: sd-test-busybox:1
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: k8s
    steps:
      - make: |
          cd "$SD_ARTIFACTS_DIR"
          echo "from a pod" > notes.txt
          mkdir -p sub/deeper
          echo nested > sub/deeper/file.txt
          head -c 1048576 /dev/urandom > blob.bin
          meta set blob.sha256 "$(sha256sum blob.bin | cut -c1-64)"
          id -u > uid.txt
"""


def test_a_pod_build_publishes_its_artifacts_for_the_api_to_list_and_serve(
    stack: Any, kube: FakeCluster, pod_repo: Callable[[dict[str, str]], GitRepo]
) -> None:
    pipeline = pipeline_of(ARTIFACTS, pod_repo)
    build = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE), kube)

    assert pipeline.creator is not None
    client = Client()
    client.force_login(pipeline.creator)
    base = f"/v4/builds/{build.pk}/artifacts"
    top = client.get(f"{base}?dir=true").json()
    assert [(e["name"], e["type"]) for e in top] == [
        ("sub", "directory"),
        ("blob.bin", "file"),
        ("environment.json", "file"),
        ("manifest.txt", "file"),
        ("notes.txt", "file"),
        ("steps.json", "file"),
        ("uid.txt", "file"),
    ]
    nested = client.get(f"{base}/sub/deeper/?dir=true").json()
    assert [e["path"] for e in nested] == ["sub/deeper/file.txt"]
    assert body(client.get(f"{base}/notes.txt")) == b"from a pod\n"
    assert body(client.get(f"{base}/sub/deeper/file.txt")) == b"nested\n"
    blob = body(client.get(f"{base}/blob.bin"))
    assert hashlib.sha256(blob).hexdigest() == build.meta["blob"]["sha256"]
    # The build container ran as the pod's user, not as the image's root.
    assert body(client.get(f"{base}/uid.txt")) == f"{POD_USER}\n".encode()
    assert b"sd-teardown-artifacts" not in body(client.get(f"{base}/manifest.txt"))
    assert "make" in body(client.get(f"{base}/steps.json")).decode()
    # The build's cleanup deletes its pod and Secret; the kubelet then lets the pod go.
    wait_until(lambda: not kube.pods and not kube.secrets, what="the pod to be deleted")


CACHE = """
cache:
  pipeline: [warm]
shared:
  image: sd-test-busybox:1
  annotations:
    screwdriver.cd/executor: k8s
jobs:
  main:
    requires: [~commit]
    steps:
      - show: cat warm/value 2>/dev/null || echo "no cache"
      - write: mkdir -p warm && echo "from event $SD_EVENT_ID" > warm/value
"""


def test_a_pipeline_cache_saved_by_one_pod_is_restored_in_the_next(
    stack: Any, kube: FakeCluster, pod_repo: Callable[[dict[str, str]], GitRepo]
) -> None:
    pipeline = pipeline_of(CACHE, pod_repo)

    first = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE), kube)
    assert step_log(first, "show") == ["no cache"]
    assert step_log(first, "sd-teardown-cache")[-1].startswith("Saved the pipeline cache warm")

    second = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE), kube)
    assert step_log(second, "show") == [f"from event {first.event_id}"]
    assert step_log(second, "sd-setup-cache")[0].startswith("Restored the pipeline cache warm")


STOPPED = """
jobs:
  main:
    image: sd-test-busybox:1
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: k8s
    steps:
      - wait: sleep 60
      - teardown-say: echo "teardown ran after $SD_STEP_EXIT_CODE"
"""


def test_a_deleted_pod_gets_sigterm_and_its_grace_for_teardown(
    stack: Any, kube: FakeCluster, pod_repo: Callable[[dict[str, str]], GitRepo]
) -> None:
    pipeline = pipeline_of(STOPPED, pod_repo)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=ALICE)

    def waiting() -> Build | None:
        build = Build.objects.filter(event=event).first()
        started = Step.objects.filter(build=build, name="wait", start_time__isnull=False)
        return build if build is not None and started.exists() else None

    # A node drained, or `kubectl delete pod`: the executor's stop deletes the pod the same way.
    KubernetesExecutor().stop(handle(wait_until(waiting, timeout=120, what="the step to start")))

    build = finished(event, kube, BuildStatus.ABORTED)
    assert build.status_message.startswith("Stopped by SIGTERM on the machine running it")
    assert Step.objects.get(build=build, name="teardown-say").code == 0
    assert step_log(build, "teardown-say")[0].startswith("teardown ran after ")
    deletes = [q for path, q, _b in kube.calls("DELETE") if "/pods/" in path]
    assert deletes[1]["gracePeriodSeconds"] == ["90"]  # the first cleared the way at start
