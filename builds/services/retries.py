"""Infrastructure retries: a build the infrastructure lost is queued again, up to N times.

`screwdriver.cd/retries: N` (0 to 5) on a job. Only a loss counts: the reaper found the lease
lapsed and the launcher gone, or the engine reported the build dead. A build whose step failed
ended through its launcher and is never retried. The same build row runs again, so its event,
its joins and the one build per job per event stay as they were.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from builds import lifecycle, live
from builds.models import Build, BuildStatus, LogBatch, Step
from builds.services.creation import dispatch_builds
from builds.services.locks import lock_pipeline_of

RETRIES_ANNOTATION = "screwdriver.cd/retries"
MAX_RETRIES = 5


def retries_of(annotations: dict[str, Any]) -> int:
    """How many infrastructure retries a job's annotations allow (the parser checked 0 to 5)."""
    raw = annotations.get(RETRIES_ANNOTATION)
    try:
        value = int(raw) if raw is not None and not isinstance(raw, bool) else 0
    except (TypeError, ValueError):
        return 0
    return max(0, min(MAX_RETRIES, value))


@transaction.atomic
def retry_lost_build(*, build_id: int, message: str) -> bool:
    """Queue a lost build again if its job allows another retry; False when it does not."""
    lock_pipeline_of(build_id)
    build = Build.objects.select_related("job", "event").filter(pk=build_id).first()
    if build is None or build.status not in (BuildStatus.QUEUED, BuildStatus.RUNNING):
        return False
    allowed = retries_of(build.job_config().get("annotations") or {})
    if build.infra_retries >= allowed:
        return False
    if Step.objects.filter(build_id=build_id, code__isnull=False).exclude(code=0).exists():
        return False  # a step of its own failed: that is the build's verdict, not a loss
    attempt = build.infra_retries + 1
    fields: dict[str, Any] = {
        "infra_retries": F("infra_retries") + 1,
        "dispatched_at": None,
        "executor_state": {},
        "lease_expires_at": None,
        "start_time": None,
        # The new attempt clones again: its launcher (and only its, by the token's attempt)
        # may ask for the checkout credential once more.
        "checkout_credential_at": None,
        "status_message": (f"Retry {attempt} of {allowed}: {message}")[:1024],
    }
    if build.status == BuildStatus.RUNNING:
        lifecycle.transition(
            build_id, BuildStatus.QUEUED, only_from=[BuildStatus.RUNNING], **fields
        )
    elif not Build.objects.filter(pk=build_id, status=BuildStatus.QUEUED).update(**fields):
        return False
    # The next attempt numbers its logs from the start again: the lost one's are dropped.
    LogBatch.objects.filter(step__build_id=build_id).delete()
    Step.objects.filter(build_id=build_id).update(
        code=None, start_time=None, end_time=None, lines=0, log_bytes=0, log_truncated=False
    )
    dispatch_builds([build_id])
    transaction.on_commit(lambda: live.publish_build(build_id=build_id))
    return True
