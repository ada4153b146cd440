"""The Docker engine: each build's steps run in a container of the job's image.

The launcher runs on this machine, as for the local executor; the container's main process is
the launcher's POSIX-sh agent (executors/launcher/agent.py), so the image needs only
`/bin/sh`. The workspace is bind-mounted at the same path, so every SD_* path means the same
inside and out. The engine is the one DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)
names; it must see this machine's workspace directory at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

from executors.base import BuildHandle, ExecutorError, LaunchRequest, start_stats
from executors.launcher.agent import agent_command, control_dir, prepare_control_dir
from executors.local import LocalExecutor, workspace_of
from executors.resources import resources_for

if TYPE_CHECKING:
    import docker

logger = logging.getLogger(__name__)

BUILD_LABEL = "screwdriver.cd/build"
INSTANCE_LABEL = "screwdriver.cd/instance"


def _docker() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - the package is pinned in requirements.txt
        raise ExecutorError("The docker package is not installed.", permanent=True) from exc
    return docker


def client(timeout: float = 30) -> docker.DockerClient:
    """A client for the engine the environment names (DOCKER_HOST, or the local socket)."""
    docker = _docker()
    try:
        return docker.from_env(timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise ExecutorError(f"Cannot reach the Docker engine: {exc}") from exc


def container_name(build_id: int) -> str:
    """One name per build and server, so a retried start finds the first attempt's container."""
    return f"{settings.SD_INSTANCE}-build-{build_id}"


def labels_for(request: LaunchRequest) -> dict[str, str]:
    """What marks a container as this server's, for this build."""
    return {
        INSTANCE_LABEL: settings.SD_INSTANCE,
        BUILD_LABEL: str(request.build_id),
        "sdbuild": str(request.build_id),
        "screwdriver.cd/pipeline": str(request.pipeline_id),
        "screwdriver.cd/job": request.job_name,
    }


class DockerExecutor(LocalExecutor):
    """Runs the launcher here and the build's steps in a container of the job's image."""

    name = "docker"

    def start(self, request: LaunchRequest) -> dict[str, Any]:
        image = request.image
        if not image:
            raise ExecutorError("The job has no image to run in.", permanent=True)
        engine = client()
        pull_started = datetime.now(tz=UTC)
        self._ensure_image(engine, image)
        workspace = self.fresh_workspace(request.build_id)
        agent_dir = prepare_control_dir(control_dir(workspace))
        # The launcher starts first: its start-up (imports, the launch spec, RUNNING) overlaps
        # the container's, and it waits for the container's agent on the control FIFOs.
        pid = self.start_launcher(
            request,
            workspace,
            (
                "--agent",
                str(agent_dir),
                "--agent-timeout",
                str(settings.SD_DOCKER_AGENT_TIMEOUT_SECONDS),
            ),
        )
        try:
            container = self._start_container(engine, request, workspace)
        except ExecutorError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            raise
        return {
            "pid": pid,
            "workspace": str(workspace),
            "container": container.id,
            "image": image,
            "stats": start_stats(image_pull_start=pull_started),
        }

    def stop(self, build: BuildHandle) -> None:
        if self._launcher_pid(build) is not None:
            # The launcher ends the step in the container, runs teardown there, then ends it.
            super().stop(build)
        else:
            self._remove_container(build)

    def is_alive(self, build: BuildHandle) -> bool:
        if super().is_alive(build):
            return True
        engine = client()
        return bool(_ours(engine, build_ids=[build.build_id]))

    def cleanup(self, build: BuildHandle) -> None:
        self._remove_container(build)
        super().cleanup(build)

    def sweep(self, *, active: Collection[int], keep: Collection[int]) -> dict[int, str]:
        """Remove the containers of builds that are over (or unknown to this server)."""
        engine = client()
        for container in _ours(engine):
            build_id = container.labels.get(BUILD_LABEL, "")
            if not build_id.isdigit() or int(build_id) not in keep:
                logger.info("Removing container %s of finished build %s", container.name, build_id)
                _remove(container)
        return {}

    # -- details ------------------------------------------------------------------------------

    def _ensure_image(self, engine: docker.DockerClient, image: str) -> None:
        docker = _docker()
        policy = settings.SD_DOCKER_PULL
        if policy != "always":
            try:
                engine.images.get(image)
                return
            except docker.errors.ImageNotFound:
                if policy == "never":
                    raise ExecutorError(
                        f"The image {image!r} is not on the Docker engine and this server does "
                        "not pull images (SD_DOCKER_PULL=never): load it there first.",
                        permanent=True,
                    ) from None
            except docker.errors.APIError as exc:
                raise ExecutorError(f"Could not look up the image {image!r}: {exc}") from exc
        repository, tag = docker.utils.parse_repository_tag(image)
        puller = client(timeout=settings.SD_DOCKER_PULL_TIMEOUT_SECONDS)
        try:
            puller.images.pull(repository, tag=tag or "latest")
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise ExecutorError(
                f"Could not pull the image {image!r}: {reason}. Check the image name in "
                "screwdriver.yaml and that the Docker engine can reach its registry.",
                permanent=True,
            ) from exc
        except Exception as exc:  # timeouts and connection errors from requests
            raise ExecutorError(
                f"Could not pull the image {image!r} in time: {exc}. Pre-pull large images.",
                permanent=True,
            ) from exc

    def _start_container(
        self,
        engine: docker.DockerClient,
        request: LaunchRequest,
        workspace: Any,
    ) -> Any:
        docker = _docker()
        image = request.image
        name = container_name(request.build_id)
        with contextlib.suppress(docker.errors.NotFound):
            _remove(engine.containers.get(name))  # a retried start
        wanted = resources_for(request.annotations)
        cpus = min(wanted.cpu_cores, float(_cpu_count(engine)))
        ws = str(workspace)
        try:
            container = engine.containers.create(
                image,
                entrypoint=agent_command(control_dir(workspace)),
                command=[],
                name=name,
                labels=labels_for(request),
                volumes={ws: {"bind": ws, "mode": "rw"}},
                user=settings.SD_DOCKER_USER or None,
                network_mode=settings.SD_DOCKER_NETWORK,
                privileged=False,
                # Root in the image keeps only what installing packages and switching users
                # needs (the list and its reasons: SD_DOCKER_CAP_ADD in settings.py).
                cap_drop=["ALL"],
                cap_add=list(settings.SD_DOCKER_CAP_ADD) or None,
                security_opt=["no-new-privileges"],
                pids_limit=settings.SD_DOCKER_PIDS_LIMIT,
                mem_limit=wanted.memory_bytes,
                memswap_limit=wanted.memory_bytes,
                nano_cpus=int(cpus * 1e9),
                auto_remove=True,
                detach=True,
                stdin_open=False,
                tty=False,
            )
        except docker.errors.APIError as exc:
            raise ExecutorError(
                f"Could not create a container of the image {image!r}: {exc.explanation or exc}",
                permanent=exc.is_client_error(),
            ) from exc
        try:
            container.start()
        except docker.errors.APIError as exc:
            _remove(container)
            raise ExecutorError(
                f"Could not start a container of the image {image!r} (it needs /bin/sh): "
                f"{exc.explanation or exc}",
                permanent=True,
            ) from exc
        return container

    def _remove_container(self, build: BuildHandle) -> None:
        try:
            engine = client()
        except ExecutorError:
            logger.warning("Cannot reach the Docker engine to remove build %s", build.build_id)
            return
        for container in _ours(engine, build_ids=[build.build_id]):
            _remove(container)


def _ours(engine: docker.DockerClient, build_ids: Sequence[int] = ()) -> list[Any]:
    filters: dict[str, Any] = {"label": [f"{INSTANCE_LABEL}={settings.SD_INSTANCE}"]}
    if build_ids:
        filters["label"].append(f"{BUILD_LABEL}={build_ids[0]}")
    return list(engine.containers.list(all=True, filters=filters))


def _remove(container: Any) -> None:
    docker = _docker()
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True)


_cpus: dict[str, int] = {}


def _cpu_count(engine: docker.DockerClient) -> int:
    # The engine refuses a CPU limit above its CPU count, so Screwdriver's HIGH (6) is capped.
    key = engine.api.base_url
    if key not in _cpus:
        _cpus[key] = int(engine.info().get("NCPU") or 1)
    return _cpus[key]


__all__ = ["DockerExecutor", "workspace_of"]
