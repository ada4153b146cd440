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
