"""Which engine runs a build: the job's screwdriver.cd/executor annotation, else the default."""

from __future__ import annotations

from django.conf import settings

from executors.base import Executor, ExecutorError
from executors.docker_engine import DockerExecutor
from executors.kubernetes_engine import KubernetesExecutor
from executors.local import LocalExecutor, sandbox_status

EXECUTOR_ANNOTATION = "screwdriver.cd/executor"
_BETA_ANNOTATION = "beta.screwdriver.cd/executor"
ENGINES = ("docker", "k8s", "local")


def executor_name_for(annotations: dict[str, object]) -> str:
    name = (
        annotations.get(EXECUTOR_ANNOTATION)
        or annotations.get(_BETA_ANNOTATION)
        or settings.SD_EXECUTOR
    )
    return str(name)


def allowed_executors() -> list[str]:
    """What a yaml may pick: the operator's SD_EXECUTORS and the default, SD_EXECUTOR."""
    return list(dict.fromkeys([str(settings.SD_EXECUTOR), *settings.SD_EXECUTORS]))


def refusal(
    name: str, *, pull_request: bool = False, fork: bool = False, docker: bool = False
) -> str | None:
    """Why a build may not run on executor `name` here, or None when it may.

    `docker` says the job asks for Docker-in-Docker, which none of our engines offers: it
    would need a privileged container beside the build (see docs/kubernetes.md).
    """
    allowed = allowed_executors()
    if name not in allowed:
        return (
            f"This job asks for the {name!r} executor ({EXECUTOR_ANNOTATION}), which this server "
            f"does not allow; it allows: {', '.join(allowed)}. Change the annotation or remove "
            "it to use the default."
        )
    if docker:
        return (
            f"This job asks for Docker-in-Docker (screwdriver.cd/dockerEnabled), which the "
            f"{name!r} executor of this server does not offer; remove the annotation, or build "
            "images without a Docker daemon (kaniko, buildah). Nothing of the job ran."
        )
    if name != "local" or not pull_request:
        return None
    if fork and not settings.SD_LOCAL_FORK_PRS:
        return (
            "Pull requests from forks do not run on the local executor of this server (its "
            "operator has not set SD_LOCAL_FORK_PRS); nothing of the fork's code ran."
        )
    sandboxed, reason = sandbox_status()
    if not sandboxed:
        return (
            "Pull requests do not run on the local executor of this server without a sandbox, "
            f"and none can start: {reason}. Nothing of the pull request's code ran."
        )
    return None


def get_executor(name: str) -> Executor:
    # The engines load their client libraries (docker, kubernetes) only when first used, so a
    # server that never runs Docker or Kubernetes builds never loads them.
    if name == "local":
        return LocalExecutor()
    if name == "docker":
        return DockerExecutor()
    if name == "k8s":
        return KubernetesExecutor()
    raise ExecutorError(
        f"Unknown executor {name!r}; this server offers: {', '.join(ENGINES)}.", permanent=True
    )


def sandbox_notice() -> str | None:
    """The one start-up line that says local builds are not sandboxed, if they are not."""
    if "local" not in allowed_executors():
        return None
    sandboxed, reason = sandbox_status()
    if sandboxed:
        return None
    if str(settings.SD_LOCAL_SANDBOX).strip().lower() == "bwrap":
        return f"Local builds cannot start: SD_LOCAL_SANDBOX is bwrap, but {reason}."
    return (
        f"Local builds run without a sandbox ({reason}): they can read what this server's "
        "user can, so pull requests will not run on the local executor."
    )
