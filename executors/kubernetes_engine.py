"""The Kubernetes engine: one pod per build, for a cluster (see docs/kubernetes.md).

The pod has two containers sharing an emptyDir workspace at /sd/workspace: `launcher` runs
this server's own image (Python, git and the launcher) and `build` runs the job's image with
the launcher's POSIX-sh agent as its main process, so that image needs only `/bin/sh`. An
init container creates the agent's FIFOs first. The build token travels in a Secret of its
own, never in the pod spec.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import Any

from django.conf import settings

from executors.base import BuildHandle, Executor, ExecutorError, LaunchRequest
from executors.launcher.agent import CONTROL_DIR_NAME, agent_command
from executors.resources import (
    DEFAULT_GRACE_SECONDS,
    disk_class,
    resources_for,
    termination_grace_seconds,
)

logger = logging.getLogger(__name__)

WORKSPACE = "/sd/workspace"
AGENT_DIR = f"{WORKSPACE}/{CONTROL_DIR_NAME}"
BUILD_LABEL = "screwdriver.cd/build"
INSTANCE_LABEL = "screwdriver.cd/instance"
# The stop grace covers the launcher's teardown budget (terminationGracePeriodSeconds, 60 s
# unless the job asks otherwise) and this much more for its last reports.
REPORT_GRACE_SECONDS = 30
TERMINATION_GRACE_SECONDS = DEFAULT_GRACE_SECONDS + REPORT_GRACE_SECONDS


def termination_grace(request: LaunchRequest) -> int:
    """The pod's terminationGracePeriodSeconds: the job's teardown grace and the reports'."""
    teardown = termination_grace_seconds(
        request.annotations, most=settings.SD_MAX_TERMINATION_GRACE_SECONDS
    )
    return teardown + REPORT_GRACE_SECONDS


PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
START_FAILURES = {
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "StartError",
    "CrashLoopBackOff",
}
_LABEL_JUNK = re.compile(r"[^A-Za-z0-9_.-]+")


def core_api() -> Any:
    """A CoreV1Api for the configured cluster: SD_K8S_API_URL, in-cluster, else KUBECONFIG."""
    from kubernetes import client, config

    if settings.SD_K8S_API_URL:
        configuration = client.Configuration()
        configuration.host = settings.SD_K8S_API_URL
        if settings.SD_K8S_TOKEN:
            configuration.api_key = {"BearerToken": settings.SD_K8S_TOKEN}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return client.CoreV1Api(client.ApiClient(configuration))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise ExecutorError(f"No Kubernetes cluster is configured: {exc}") from exc
    return client.CoreV1Api()


def _api_error() -> type[Exception]:
    from kubernetes.client.exceptions import ApiException

    return ApiException


def pod_name(build_id: int) -> str:
    """One name per build and server (DNS-1123, at most 63 characters)."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", settings.SD_INSTANCE.lower()).strip("-")[:40]
    return f"{prefix}-build-{build_id}"


def label_value(value: object) -> str:
    """A Kubernetes label value: 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends."""
    text = _LABEL_JUNK.sub(".", str(value))[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)


def labels_for(request: LaunchRequest) -> dict[str, str]:
    """What marks a pod as this server's, for this build (Screwdriver's labels too)."""
    return {
        "app": "screwdriver",
        "tier": "builds",
        "sdbuild": str(request.build_id),
        INSTANCE_LABEL: label_value(settings.SD_INSTANCE),
        BUILD_LABEL: str(request.build_id),
        "screwdriver.cd/pipeline": str(request.pipeline_id),
        "screwdriver.cd/job": label_value(request.job_name),
    }


def _restricted() -> dict[str, Any]:
    # The "restricted" Pod Security Standard, container by container.
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _disk(request: LaunchRequest) -> dict[str, str]:
    """The build's ephemeral storage for its `screwdriver.cd/disk` class, as the operator sized
    it (`SD_K8S_DISK_LOW`, `SD_K8S_DISK_HIGH`); nothing when the operator did not."""
    wanted = disk_class(request.annotations)
    size = str(settings.SD_K8S_DISK_HIGH if wanted == "HIGH" else settings.SD_K8S_DISK_LOW)
    return {"ephemeral-storage": size.strip()} if size.strip() else {}


def pod_manifest(request: LaunchRequest) -> dict[str, Any]:
    """The pod that runs the build: launcher and agent containers over one workspace."""
    name = pod_name(request.build_id)
    wanted = resources_for(request.annotations)
    disk = _disk(request)
    mount = [{"name": "workspace", "mountPath": WORKSPACE}]
    launcher_image = settings.SD_K8S_LAUNCHER_IMAGE
    policy = settings.SD_K8S_IMAGE_PULL_POLICY
    uid = settings.SD_K8S_RUN_AS_USER
    launcher = [
        "python",
        "-m",
        "executors.launcher",
        "--api-url",
        request.api_url,
        "--build-id",
        str(request.build_id),
        "--workspace",
        WORKSPACE,
        "--agent",
        AGENT_DIR,
        "--agent-timeout",
        str(int(settings.SD_K8S_AGENT_TIMEOUT_SECONDS)),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels_for(request)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": int(request.timeout_seconds)
            + settings.SD_K8S_POD_GRACE_SECONDS,
            "terminationGracePeriodSeconds": termination_grace(request),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": uid,
                "fsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # The workspace is where a build writes most: it counts against the same disk.
            "volumes": [
                {"name": "workspace", "emptyDir": {"sizeLimit": disk["ephemeral-storage"]}}
                if disk
                else {"name": "workspace", "emptyDir": {}}
            ],
            "initContainers": [
                {
                    "name": "sd-prepare",
                    "image": launcher_image,
                    "imagePullPolicy": policy,
                    "command": ["python", "-m", "executors.launcher.agent", AGENT_DIR],
                    "securityContext": _restricted(),
                    "volumeMounts": mount,
                    "resources": {"limits": {"cpu": "250m", "memory": "128Mi"}},
                }
            ],
            "containers": [
                {
                    "name": "launcher",
                    "image": launcher_image,
                    "imagePullPolicy": policy,
                    "command": launcher,
                    "env": [
                        {
                            "name": "SD_LAUNCHER_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}},
                        },
                        {
                            "name": "SD_LOG_MAX_LINE_BYTES",
                            "value": str(settings.SD_LOG_MAX_LINE_BYTES),
                        },
                        {
                            "name": "SD_LOG_MAX_STEP_BYTES",
                            "value": str(settings.SD_LOG_MAX_STEP_BYTES),
                        },
                    ],
                    "securityContext": _restricted(),
                    "volumeMounts": mount,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"},
                    },
                },
                {
                    "name": "build",
                    "image": request.image,
                    "imagePullPolicy": policy,
                    "command": agent_command(AGENT_DIR),
                    "workingDir": WORKSPACE,
                    "securityContext": _restricted(),
                    "volumeMounts": mount,
                    "resources": {
                        "requests": {"cpu": wanted.k8s_cpu, "memory": wanted.k8s_memory, **disk},
                        "limits": {"cpu": wanted.k8s_cpu, "memory": wanted.k8s_memory, **disk},
                    },
                },
            ],
        },
    }


def verdict(pod: Any) -> str | None:
    """Why a build's pod can no longer succeed, in one sentence, or None while it still may."""
    status = pod.status
    if status is None:
        return None
    for container in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = container.state.waiting if container.state else None
        if waiting is None or not waiting.reason:
            continue
        detail = (
            f" ({waiting.reason}): {waiting.message}" if waiting.message else f" ({waiting.reason})"
        )
        if waiting.reason in PULL_FAILURES:
            return (
                f"The image {container.image!r} could not be pulled{detail}. Check the image name "
                "in screwdriver.yaml and that the cluster can reach its registry."
            )
        if waiting.reason in START_FAILURES:
            return f"The build's pod could not start its {container.name} container{detail}."
    if status.phase == "Failed":
        if status.reason == "DeadlineExceeded":
            return "Kubernetes stopped the build's pod at its deadline (the timeout plus a grace)."
        if status.reason == "Evicted":
            return f"Kubernetes evicted the build's pod: {status.message or 'no reason given'}."
        return f"The build's pod failed: {status.message or status.reason or 'no reason given'}."
    return None


class KubernetesExecutor(Executor):
    """Runs each build in a pod of its own."""

    name = "k8s"

    def start(self, request: LaunchRequest) -> dict[str, Any]:
        image = request.image
        if not image:
            raise ExecutorError("The job has no image to run in.", permanent=True)
        api = core_api()
        namespace = settings.SD_K8S_NAMESPACE
        manifest = pod_manifest(request)
        name = manifest["metadata"]["name"]
        self._delete(api, name, grace=0)  # a retried start replaces the first attempt
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": manifest["metadata"]["labels"]},
            "type": "Opaque",
            "stringData": {"token": request.token},
        }
        error = _api_error()
        try:
            api.create_namespaced_secret(namespace, secret)
            api.create_namespaced_pod(namespace, manifest)
        except error as exc:
            self._delete(api, name, grace=0)
            status = getattr(exc, "status", 0) or 0
            raise ExecutorError(
                f"Kubernetes refused the build's pod: {getattr(exc, 'reason', exc)}",
                permanent=400 <= status < 500 and status not in (409, 429),
            ) from exc
        except Exception as exc:  # connection errors: worth a retry
            raise ExecutorError(f"Cannot reach the Kubernetes API: {exc}") from exc
        grace = manifest["spec"]["terminationGracePeriodSeconds"]
        return {"pod": name, "namespace": namespace, "image": image, "grace": grace}

    def stop(self, build: BuildHandle) -> None:
        # Deleting the pod sends SIGTERM to the launcher, which runs teardown within the grace.
        name = build.state.get("pod")
        if name:
            grace = build.state.get("grace")
            grace = grace if isinstance(grace, int) else TERMINATION_GRACE_SECONDS
            self._delete(core_api(), str(name), grace=grace)

    def is_alive(self, build: BuildHandle) -> bool:
        name = build.state.get("pod")
        if not name:
            return False
        try:
            pod = core_api().read_namespaced_pod(str(name), self._namespace(build))
        except _api_error() as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise ExecutorError(f"Cannot read the build's pod: {exc}") from exc
        return pod.status is None or pod.status.phase in (None, "Pending", "Running")

    def launcher_alive(self, build: BuildHandle) -> bool:
        name = build.state.get("pod")
        if not name:
            return False
        try:
            pod = core_api().read_namespaced_pod(str(name), self._namespace(build))
        except _api_error():
            return False
        statuses = (pod.status and pod.status.container_statuses) or []
        return any(s.name == "launcher" and s.state and s.state.running for s in statuses)

    def cleanup(self, build: BuildHandle) -> None:
        name = build.state.get("pod") or pod_name(build.build_id)
        self._delete(core_api(), str(name), grace=0)

    def sweep(self, *, active: Collection[int], keep: Collection[int]) -> dict[int, str]:
        """Delete pods of builds that are over; explain the pods that cannot succeed."""
        api = core_api()
        selector = f"{INSTANCE_LABEL}={label_value(settings.SD_INSTANCE)}"
        pods = api.list_namespaced_pod(settings.SD_K8S_NAMESPACE, label_selector=selector).items
        verdicts: dict[int, str] = {}
        for pod in pods:
            build_id = (pod.metadata.labels or {}).get(BUILD_LABEL, "")
            if not build_id.isdigit() or int(build_id) not in keep:
                logger.info("Deleting pod %s of finished build %s", pod.metadata.name, build_id)
                self._delete(api, pod.metadata.name, grace=0)
                continue
            if int(build_id) in active:
                message = verdict(pod)
                if message is not None:
                    verdicts[int(build_id)] = self._with_log(api, pod, message)
        return verdicts

    # -- details ------------------------------------------------------------------------------

    def _namespace(self, build: BuildHandle) -> str:
        return str(build.state.get("namespace") or settings.SD_K8S_NAMESPACE)

    def _with_log(self, api: Any, pod: Any, message: str) -> str:
        if pod.status.phase != "Failed":
            return message
        try:
            # The raw answer: some client versions hand back the repr of the bytes instead.
            answer = api.read_namespaced_pod_log(
                pod.metadata.name,
                settings.SD_K8S_NAMESPACE,
                container="launcher",
                tail_lines=3,
                _preload_content=False,
            )
            tail = answer.data.decode(errors="replace")
        except Exception:
            return message
        last = [line for line in tail.splitlines() if line.strip()]
        return f"{message} The launcher said: {last[-1]}" if last else message

    def _delete(self, api: Any, name: str, *, grace: int) -> None:
        namespace = settings.SD_K8S_NAMESPACE
        error = _api_error()
        for delete in (
            # The answers (the pod, a Status) are not needed: leave them unparsed.
            lambda: api.delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace, _preload_content=False
            ),
            lambda: api.delete_namespaced_secret(name, namespace, _preload_content=False),
        ):
            try:
                delete()
            except error as exc:
                if getattr(exc, "status", None) != 404:
                    logger.warning("Could not delete %s: %s", name, exc)
            except Exception as exc:
                raise ExecutorError(f"Cannot reach the Kubernetes API: {exc}") from exc
