"""django-q2 entry points: take an id, call a service. Nothing else lives here."""

from __future__ import annotations

from builds import services as build_services
from pipelines import services


def start_periodic_build(job_id: int) -> int | None:
    event = services.start_periodic_build(job_id=job_id)
    return event.pk if event is not None else None


def release_frozen_builds(job_id: int | None = None) -> list[int]:
    # Freeze windows are a job setting; the release itself is a build service.
    return build_services.release_frozen(job_id=job_id)
