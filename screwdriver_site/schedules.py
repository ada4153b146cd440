"""The periodic tasks every installation runs, as rows of django-q2's Schedule table.

They are written by a data migration (so a database that has been migrated has them) and
again each time a worker starts (so a changed interval setting takes effect on restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

# django-q2's schedule types, spelled out: a migration's historical model has no constants.
MINUTES = "I"
DAILY = "D"


@dataclass(frozen=True)
class Periodic:
    """One periodic task: its schedule name, its entry point and how often it runs."""

    name: str
    func: str
    minutes: int | None  # None: once a day

    @property
    def schedule_type(self) -> str:
        return DAILY if self.minutes is None else MINUTES


def periodic_tasks() -> list[Periodic]:
    """What must run on its own: the reaper (lost builds, timeouts, engine leftovers), the
    outbox sweep, the repository poller, the webhook redelivery sweep, and the retention of
    webhook deliveries and of build outputs (artifacts, caches)."""
    return [
        Periodic("sd-reaper", "executors.tasks.reap", max(1, settings.SD_REAPER_INTERVAL_MINUTES)),
        Periodic("sd-outbox", "builds.tasks.sweep_outbox", 1),
        Periodic(
            "sd-scm-poll", "executors.tasks.poll_repositories", max(1, settings.SD_SCM_POLL_MINUTES)
        ),
        Periodic("sd-webhook-redeliver", "scm.tasks.redeliver_stuck", 1),
        Periodic("sd-prune-deliveries", "scm.tasks.prune_deliveries", None),
        Periodic("sd-prune-outputs", "builds.tasks.prune_outputs", None),
    ]


def ensure_periodic_tasks(schedule_model: Any = None) -> list[str]:
    """Create or update every periodic task's schedule; return their names.

    `schedule_model` is django-q2's Schedule, or its historical version in a migration.
    """
    if schedule_model is None:
        from django_q.models import Schedule

        schedule_model = Schedule
    names = []
    for task in periodic_tasks():
        fields = {
            "func": task.func,
            "schedule_type": task.schedule_type,
            "minutes": task.minutes,
            "repeats": -1,
        }
        # Schedule.name is not unique: two servers starting together may both have created
        # one. Keep the oldest, bring it up to date, drop the others.
        rows = list(schedule_model.objects.filter(name=task.name).order_by("pk"))
        if rows:
            schedule_model.objects.filter(pk=rows[0].pk).update(**fields)
            schedule_model.objects.filter(pk__in=[row.pk for row in rows[1:]]).delete()
        else:
            schedule_model.objects.create(name=task.name, **fields)
        names.append(task.name)
    return names
