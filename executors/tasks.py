"""django-q2 entry points: take an id, call a service. Nothing else lives here."""

from __future__ import annotations

from executors import services
from scm import services as scm_services


def start_build(build_id: int) -> None:
    services.start_build(build_id=build_id)


def stop_build(build_id: int) -> None:
    services.stop_build(build_id=build_id)


def cleanup_build(build_id: int, attempt: int = 0) -> None:
    services.cleanup_build(build_id=build_id, attempt=attempt)


def reap() -> dict[str, int]:
    return services.reap()


def poll_repositories() -> int:
    return scm_services.poll_all()
