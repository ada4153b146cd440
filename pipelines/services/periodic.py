"""Periodic builds: a job's schedule fires, and an event starts at its branch head."""

from __future__ import annotations

import logging

from django_q.models import Schedule

from pipelines import periodic
from pipelines.models import SCHEDULER_USERNAME, Event, Job, Pipeline
from pipelines.services.events import Creator, start_event
from pipelines.services.pipelines import PipelineError

logger = logging.getLogger(__name__)


def start_periodic_build(*, job_id: int) -> Event | None:
    """Start an event from the job at its branch head, as Screwdriver's scheduler does.

    A job that is gone, disabled or archived, or a pipeline that is not active, loses its
    schedule here instead: those changes happen in places that do not know about schedules.
    """
    job = Job.objects.select_related("pipeline").filter(pk=job_id).first()
    if job is None:
        Schedule.objects.filter(
            name__startswith="sd-periodic-", name__endswith=f"-{job_id}"
        ).delete()
        return None
    if (
        job.archived
        or job.state != Job.State.ENABLED
        or job.pipeline.state != Pipeline.State.ACTIVE
        or not periodic.periodic_cron_of(job)
    ):
        periodic.sync_schedules(pipeline=job.pipeline)
        return None
    try:
        return start_event(
            pipeline=job.pipeline,
            start_from=job.name,
            creator=Creator(name=periodic.SCHEDULER_NAME, username=SCHEDULER_USERNAME),
            cause_message=periodic.CAUSE_MESSAGE,
        )
    except PipelineError as exc:
        logger.warning("Periodic build of job %s did not start: %s", job_id, exc.message)
        return None
