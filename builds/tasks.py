"""django-q2 entry points: take an id, call a service. Nothing else lives here."""

from __future__ import annotations

from builds import services


def trigger_remote_jobs(build_id: int) -> None:
    services.run_remote_triggers(build_id=build_id)
