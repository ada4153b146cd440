"""Periodic builds: ``screwdriver.cd/buildPeriodically`` as one django-q2 CRON schedule per job.

Screwdriver spreads periodic builds over the clock by replacing ``H`` with a number hashed
from the job's id, and always hashes the minute; we do the same, so a job keeps its minute.
Schedules are evaluated in UTC (``Q_CLUSTER["time_zone"]``), as Screwdriver's are.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction
from django_q.models import Schedule

from pipelines.config.cron import CronError, next_run_of, transform_cron
from pipelines.models import Job, Pipeline

logger = logging.getLogger(__name__)

PERIODIC_ANNOTATION = "screwdriver.cd/buildPeriodically"
START_TASK = "pipelines.tasks.start_periodic_build"
SCHEDULER_NAME = "Screwdriver scheduler"
CAUSE_MESSAGE = "Started by periodic build scheduler"

_PR_JOB = re.compile(r"PR-\d+:")


def periodic_cron_of(job: Job) -> str | None:
    """The job's ``buildPeriodically`` value, from its first permutation as Screwdriver reads it."""
    permutations: list[dict[str, Any]] = job.permutations or []
    annotations = (permutations[0].get("annotations") or {}) if permutations else {}
    value = annotations.get(PERIODIC_ANNOTATION)
    if value is None:
        return None
    return str(value).strip() or None


def schedule_name(*, pipeline_id: int, job_id: int) -> str:
    return f"sd-periodic-{pipeline_id}-{job_id}"


def _wanted_crons(pipeline: Pipeline) -> dict[str, tuple[int, str]]:
    if pipeline.state != Pipeline.State.ACTIVE:
        return {}
    wanted = {}
    for job in Job.objects.filter(pipeline=pipeline, archived=False, state=Job.State.ENABLED):
        value = periodic_cron_of(job)
        # A pull request's copy of a job runs for the pull request only, never on a clock.
        if not value or _PR_JOB.match(job.name):
            continue
        try:
            cron = transform_cron(value, job.pk)
        except CronError as exc:
            logger.warning("Job %s gets no periodic builds: %s", job.pk, exc)
            continue
        wanted[schedule_name(pipeline_id=pipeline.pk, job_id=job.pk)] = (job.pk, cron)
    return wanted


@transaction.atomic
def sync_schedules(*, pipeline: Pipeline) -> None:
    """Keep one CRON schedule per periodic job of the pipeline: create, update, delete."""
    # Locking the schedules would lock nothing when there are none yet, and a schedule's name
    # is not unique: the pipeline's row serialises two syncs, or both would create one.
    if not Pipeline.objects.select_for_update().filter(pk=pipeline.pk).exists():
        return
    wanted = _wanted_crons(pipeline)
    existing: dict[str, Schedule] = {}
    extra: list[int] = []
    for schedule in Schedule.objects.filter(
        name__startswith=f"sd-periodic-{pipeline.pk}-"
    ).order_by("pk"):
        # Two builds a period is what a duplicate left by an earlier race would cause.
        if schedule.name in existing:
            extra.append(schedule.pk)
        else:
            existing[schedule.name] = schedule
    extra += [s.pk for n, s in existing.items() if n not in wanted]
    Schedule.objects.filter(pk__in=extra).delete()
    for name, (job_id, cron) in wanted.items():
        current = existing.get(name)
        if current is None:
            Schedule.objects.create(
                name=name,
                func=START_TASK,
                args=str(job_id),
                schedule_type=Schedule.CRON,
                cron=cron,
                repeats=-1,
                next_run=next_run_of(cron),
            )
        elif current.cron != cron or current.func != START_TASK:
            Schedule.objects.filter(pk=current.pk).update(
                func=START_TASK, args=str(job_id), cron=cron, next_run=next_run_of(cron)
            )
