"""Which engine runs a build: the job's screwdriver.cd/executor annotation, else the default."""

from __future__ import annotations

from django.conf import settings

from executors.base import Executor, ExecutorError

EXECUTOR_ANNOTATION = "screwdriver.cd/executor"


def executor_name_for(annotations: dict[str, object]) -> str:
    name = annotations.get(EXECUTOR_ANNOTATION) or settings.SD_EXECUTOR
    return str(name)


def get_executor(name: str) -> Executor:
    from executors.local import LocalExecutor

    engines: dict[str, type[Executor]] = {"local": LocalExecutor}
    try:
        return engines[name]()
    except KeyError:
        known = ", ".join(sorted(engines))
        raise ExecutorError(
            f"Unknown executor {name!r}; this server offers: {known}.", permanent=True
        ) from None
