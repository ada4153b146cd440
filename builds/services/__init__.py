"""Every change of a build's state: creation, transitions, completion and what it triggers.

Only this package changes `Build.status`. Each transition is a conditional UPDATE that names
the statuses it may leave, and checks the row count, so two writers can never both win.

Layers, lowest first: `status` (the conditional UPDATE, locks, event status) and `creation`
(build rows, dispatch) import nothing of the package; `transitions` and `remote` import names
from the layers below. `completion`, `stages`, `blocking` and `freeze` call each other in a
cycle (a virtual build settles, its completion starts the next jobs, those settle...), so they
import each other as modules and look names up at call time.
"""

from __future__ import annotations

from builds.services.blocking import (
    BLOCKED_BY_SAME_JOB,
    COLLAPSE_BUILDS,
    _after_collapse,
    _annotation_on,
    _blockers,
    _collapse_older,
    _hold_blocked,
    _release_blocked,
    release_remotely_blocked,
)
from builds.services.completion import (
    MAX_INHERITED_EVENTS,
    SKIP_FURTHER,
    _after_finish,
    _drop_waiting_joins,
    _inherited_builds,
    _next_jobs,
    _parent_builds_entry,
    _remote_outcome,
    _settle_virtual,
    _trigger_next,
    create_start_builds,
    deep_merge,
    enqueue_remote_triggers,
    skips_further,
)
from builds.services.creation import (
    SETUP_STEP,
    TIMEOUT_ANNOTATION,
    _config_of,
    _create_once,
    _create_permutations,
    _delete_if_waiting,
    _dispatch,
    _next_number,
    create_build,
    permutation_count,
    skips_checkout,
    timeout_seconds_of,
)
from builds.services.remote import (
    MAX_REMOTE_CHAIN,
    _remote_chain,
    _remote_join_arrived,
    _start_remote_event,
    run_remote_triggers,
    trigger_remote_jobs,
)
from builds.services.stages import (
    _open_stage_builds,
    _settle_stage,
    _stage_failed,
    _stage_members,
)
from builds.services.status import (
    _FAILED,
    _SUCCEEDED,
    EVENT_STATUS_OF_BUILD,
    TransitionError,
    _job_outcome,
    _lock_pipeline,
    _lock_pipeline_of,
    _transition,
    refresh_event_status,
)
from builds.services.transitions import (
    START_GRACE,
    _lease_until,
    abort_build,
    fail_lost_build,
    finish_build,
    mark_running,
    renew_lease,
    stop_event,
    update_step,
)

__all__ = [
    "BLOCKED_BY_SAME_JOB",
    "COLLAPSE_BUILDS",
    "EVENT_STATUS_OF_BUILD",
    "MAX_INHERITED_EVENTS",
    "MAX_REMOTE_CHAIN",
    "SETUP_STEP",
    "SKIP_FURTHER",
    "START_GRACE",
    "TIMEOUT_ANNOTATION",
    "_FAILED",
    "_SUCCEEDED",
    "TransitionError",
    "_after_collapse",
    "_after_finish",
    "_annotation_on",
    "_blockers",
    "_collapse_older",
    "_config_of",
    "_create_once",
    "_create_permutations",
    "_delete_if_waiting",
    "_dispatch",
    "_drop_waiting_joins",
    "_hold_blocked",
    "_inherited_builds",
    "_job_outcome",
    "_lease_until",
    "_lock_pipeline",
    "_lock_pipeline_of",
    "_next_jobs",
    "_next_number",
    "_open_stage_builds",
    "_parent_builds_entry",
    "_release_blocked",
    "_remote_chain",
    "_remote_join_arrived",
    "_remote_outcome",
    "_settle_stage",
    "_settle_virtual",
    "_stage_failed",
    "_stage_members",
    "_start_remote_event",
    "_transition",
    "_trigger_next",
    "abort_build",
    "create_build",
    "create_start_builds",
    "deep_merge",
    "enqueue_remote_triggers",
    "fail_lost_build",
    "finish_build",
    "mark_running",
    "permutation_count",
    "refresh_event_status",
    "release_remotely_blocked",
    "renew_lease",
    "run_remote_triggers",
    "skips_checkout",
    "skips_further",
    "stop_event",
    "timeout_seconds_of",
    "trigger_remote_jobs",
    "update_step",
]
