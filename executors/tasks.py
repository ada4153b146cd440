"""django-q2 entry points: take an id, call a service. Nothing else lives here.

Schedules and queued tasks name these functions by their path ("executors.tasks.reap"), so
they stay here while the work they start lives in the build kernel.
"""

from __future__ import annotations

from builds import dispatch
from scm import services as scm_services


def start_build(build_id: int) -> None:
    dispatch.start_build(build_id=build_id)


def stop_build(build_id: int) -> None:
    dispatch.stop_build(build_id=build_id)


def cleanup_build(build_id: int, attempt: int = 0) -> None:
    dispatch.cleanup_build(build_id=build_id, attempt=attempt)


def reap() -> dict[str, int]:
    return dispatch.reap()


def poll_repositories() -> int:
    return scm_services.poll_all()
