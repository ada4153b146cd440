"""The outbox: what must follow a build's status change, done at least once after the commit.

`record` writes one row per interested handler in the transaction that changes the status,
and asks a worker to dispatch them once that transaction commits. `dispatch` claims each row
with a conditional UPDATE of its `due_at`, so two dispatchers never run one row at once, and
a worker that dies holding a claim only delays it: the sweep (every minute) takes every row
whose claim lapsed or whose nudge never arrived. Handlers make their effects idempotent
(unique keys, current-state reads), since a row whose handler crashed is run again.

The handlers are wired in `screwdriver_site/wiring.py`, once, when the project starts: the
build kernel knows their names and statuses, never their modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from builds.models import Build, OutboxMessage

logger = logging.getLogger(__name__)

DISPATCH_TASK = "builds.tasks.dispatch_outbox"
# Longer than django-q2 lets a task run (60 s), so a live claim is never taken twice.
CLAIM = timedelta(seconds=90)
# A row whose handler failed this many times is given up on, with the error kept.
MAX_ATTEMPTS = 5
# Rows done this long ago are deleted by the sweep.
KEEP_DONE = timedelta(days=7)
BATCH = 200


@dataclass(frozen=True)
class Handler:
    """One kind of work that follows a status change: its name, statuses and function."""

    name: str
    statuses: frozenset[str]
    run: Callable[..., object]
    # The handler acts on the build's current state, so a row that a newer row of the same
    # build supersedes has nothing left to do (a late "queued" after the build ended).
    latest_only: bool = False
    # Whether the handler can have anything to do for the build (with its job, event and
    # pipeline) as it is when its status changes: a commit status for a pipeline whose SCM
    # has none, a notice for a job with no notification settings. A build it cannot concern
    # gets no row, and no worker spends a task finding that out.
    concerns: Callable[[Build], bool] | None = None


_handlers: dict[str, Handler] = {}


def connect(
    name: str,
    *,
    statuses: Iterable[str],
    run: Callable[..., object],
    latest_only: bool = False,
    concerns: Callable[[Build], bool] | None = None,
) -> None:
    """Have ``run(build_id=...)`` called after every change of a build to one of ``statuses``
    (of a build that ``concerns`` says it can concern, when given)."""
    _handlers[name] = Handler(
        name=name,
        statuses=frozenset(statuses),
        run=run,
        latest_only=latest_only,
        concerns=concerns,
    )


def handlers() -> dict[str, Handler]:
    """The handlers connected so far, by name."""
    return dict(_handlers)


def record(*, build_id: int, status: str) -> list[int]:
    """Write the rows of what follows ``build_id`` becoming ``status``; nudge after commit."""
    now = timezone.now()
    interested = [h for h in _handlers.values() if status in h.statuses]
    if any(h.concerns is not None for h in interested):
        build = Build.objects.select_related("job", "event__pipeline").filter(pk=build_id).first()
        if build is not None:
            interested = [h for h in interested if h.concerns is None or h.concerns(build)]
    ids = [
        OutboxMessage.objects.create(
            build_id=build_id, handler=h.name, status=status, due_at=now
        ).pk
        for h in interested
    ]
    if ids:
        # One task for all the rows of a change (a build's end writes six), queued by the
        # request that made it; the worker hands out the rest (`dispatch_nudged`).
        transaction.on_commit(partial(_nudge, ids))
    return ids


def _nudge(ids: list[int]) -> None:
    async_task(DISPATCH_TASK, ids, task_name=f"outbox-{ids[0]}")


def dispatch_nudged(ids: list[int]) -> int:
    """Run the first of a change's rows; give each other one a task of its own, so that a
    slow handler (another pipeline's repository) never holds up a quick one (telling an
    engine to stop a build)."""
    if not ids:
        return 0
    first, *rest = ids
    for row_id in rest:
        _nudge([row_id])
    return dispatch(ids=[first])


def dispatch(*, ids: Iterable[int] | None = None, now: datetime | None = None) -> int:
    """Run the due rows (of ``ids``, or all); return how many ran to completion."""
    now = now or timezone.now()
    pending = OutboxMessage.objects.filter(done_at__isnull=True)
    if ids is None:
        due = pending.filter(due_at__lte=now)
    else:
        # A nudge runs its fresh rows whatever the clocks of the web and worker processes
        # say; a row already tried waits for its retry time.
        due = pending.filter(Q(due_at__lte=now) | Q(attempts=0), pk__in=list(ids))
    done = 0
    for row_id in list(due.order_by("pk").values_list("pk", flat=True)[:BATCH]):
        try:
            done += _run(row_id, fresh=ids is not None)
        except Exception:
            # One row the database refuses (its build deleted meanwhile...) must not stop
            # the sweep from reaching the rows after it.
            logger.exception("Outbox row %s could not be run", row_id)
    return done


def _run(row_id: int, *, fresh: bool) -> bool:
    now = timezone.now()
    claimable = Q(due_at__lte=now) | Q(attempts=0) if fresh else Q(due_at__lte=now)
    claimed = (
        OutboxMessage.objects.filter(claimable, pk=row_id, done_at__isnull=True)
        .filter(attempts__lt=MAX_ATTEMPTS)
        .update(due_at=now + CLAIM, attempts=F("attempts") + 1)
    )
    if not claimed:
        return False  # another dispatcher holds it, it is done, or it was given up
    row = OutboxMessage.objects.filter(pk=row_id).first()
    if row is None:
        return False  # its build was deleted, and the row with it
    handler = _handlers.get(row.handler)
    if handler is None:
        _give_up(row, f"No handler named {row.handler!r} is wired.")
        return False
    if handler.latest_only and _superseded(row):
        OutboxMessage.objects.filter(pk=row.pk).update(
            done_at=timezone.now(), error="Superseded by a later change of the build."
        )
        return False
    try:
        handler.run(build_id=row.build_id)
    except Exception as exc:
        logger.exception("Outbox %s for build %s failed", row.handler, row.build_id)
        if row.attempts >= MAX_ATTEMPTS:
            _give_up(row, f"{type(exc).__name__}: {exc}")
        else:
            # Back off: 1, 2, 4, 8 minutes before the sweep takes it again.
            retry = timezone.now() + timedelta(minutes=2 ** (row.attempts - 1))
            OutboxMessage.objects.filter(pk=row.pk).update(
                due_at=retry, error=f"{type(exc).__name__}: {exc}"[:1024]
            )
        return False
    OutboxMessage.objects.filter(pk=row.pk).update(done_at=timezone.now())
    return True


def _superseded(row: OutboxMessage) -> bool:
    return OutboxMessage.objects.filter(
        build_id=row.build_id, handler=row.handler, pk__gt=row.pk
    ).exists()


def _give_up(row: OutboxMessage, error: str) -> None:
    logger.error("Outbox %s for build %s given up: %s", row.handler, row.build_id, error)
    OutboxMessage.objects.filter(pk=row.pk).update(done_at=timezone.now(), error=error[:1024])


def _give_up_exhausted(now: datetime) -> int:
    # A row claimed MAX_ATTEMPTS times whose claim lapsed: its worker died (killed for
    # running too long, or with its machine) each time; trying again would only repeat that.
    exhausted = OutboxMessage.objects.filter(
        done_at__isnull=True, due_at__lte=now, attempts__gte=MAX_ATTEMPTS
    )
    return exhausted.update(
        done_at=now,
        error=f"Given up after {MAX_ATTEMPTS} tries: the worker running it died each time.",
    )


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic pass: run every row whose nudge or claim was lost; drop old done rows."""
    now = now or timezone.now()
    ran = dispatch(now=now)
    given_up = _give_up_exhausted(now)
    pruned, _ = OutboxMessage.objects.filter(done_at__lt=now - KEEP_DONE).delete()
    return {"ran": ran, "given_up": given_up, "pruned": pruned}
