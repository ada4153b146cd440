"""Every change of a build's state: creation, transitions, completion and what it triggers.

Status writes go through `builds.lifecycle`; this package decides which ones to make. Its
modules, by subject: `locks` (row locks), `creation` (build rows, dispatch), `transitions`
(run, finish, abort, stop, fail lost), `completion` (meta, next jobs, joins), `stages`,
`blocking` and `freeze`. Remote triggers start other pipelines' events, which is
orchestration: they live in `pipelines.services.triggers`. `completion`, `stages`,
`blocking` and `freeze` call each other (a virtual build settles, its completion starts the
next jobs, those settle...), so they import each other as modules and look names up at call
time.
"""

from __future__ import annotations

from builds.lifecycle import TransitionError, refresh_event_status
from builds.services.blocking import release_remotely_blocked
from builds.services.completion import create_start_builds, deep_merge, skips_further
from builds.services.creation import (
    SETUP_STEP,
    TIMEOUT_ANNOTATION,
    create_build,
    permutation_count,
    skips_checkout,
    timeout_seconds_of,
)
from builds.services.transitions import (
    START_GRACE,
    abort_build,
    fail_lost_build,
    finish_build,
    mark_running,
    renew_lease,
    stop_event,
    update_step,
)

__all__ = [
    "SETUP_STEP",
    "START_GRACE",
    "TIMEOUT_ANNOTATION",
    "TransitionError",
    "abort_build",
    "create_build",
    "create_start_builds",
    "deep_merge",
    "fail_lost_build",
    "finish_build",
    "mark_running",
    "permutation_count",
    "refresh_event_status",
    "release_remotely_blocked",
    "renew_lease",
    "skips_checkout",
    "skips_further",
    "stop_event",
    "timeout_seconds_of",
    "update_step",
]
