"""Which engine runs a build: the job's screwdriver.cd/executor annotation, else the default."""

from __future__ import annotations

from django.conf import settings

from executors.base import Executor, ExecutorError

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


def refusal(name: str, *, pull_request: bool = False, fork: bool = False) -> str | None:
    """Why a build may not run on executor `name` here, or None when it may."""
    allowed = allowed_executors()
    if name not in allowed:
        return (
            f"This job asks for the {name!r} executor ({EXECUTOR_ANNOTATION}), which this server "
            f"does not allow; it allows: {', '.join(allowed)}. Change the annotation or remove "
            "it to use the default."
        )
    if name != "local" or not pull_request:
        return None
    if fork and not settings.SD_LOCAL_FORK_PRS:
        return (
            "Pull requests from forks do not run on the local executor of this server (its "
            "operator has not set SD_LOCAL_FORK_PRS); nothing of the fork's code ran."
        )
    from executors.local import sandbox_status

    sandboxed, reason = sandbox_status()
    if not sandboxed:
        return (
            "Pull requests do not run on the local executor of this server without a sandbox, "
            f"and none can start: {reason}. Nothing of the pull request's code ran."
        )
    return None


def get_executor(name: str) -> Executor:
    # Imported here so that a server that never runs Docker or Kubernetes builds never loads
    # their client libraries.
    if name == "local":
        from executors.local import LocalExecutor

        return LocalExecutor()
    if name == "docker":
        from executors.docker_engine import DockerExecutor

        return DockerExecutor()
    if name == "k8s":
        from executors.kubernetes_engine import KubernetesExecutor

        return KubernetesExecutor()
    raise ExecutorError(
        f"Unknown executor {name!r}; this server offers: {', '.join(ENGINES)}.", permanent=True
    )
