"""Every change of a build's state: creation, transitions, completion and what it triggers.

Status writes go through `builds.lifecycle`; this package decides which ones to make. Its
modules, by subject: `locks` (row locks), `creation` (build rows, dispatch), `transitions`
(run, finish, abort, stop, fail lost), and the rules `completion` (next jobs, joins),
`stages`, `blocking` and `freeze`, which decide and return what they changed. `settle` is
the one loop that calls the rules in order: a queue of ended builds, each settled in turn,
never a recursion. Remote triggers start other pipelines' events, which is orchestration:
they live in `pipelines.services.triggers`.
"""

from __future__ import annotations

from builds.lifecycle import TransitionError, refresh_event_status
from builds.services.completion import deep_merge, skips_further
from builds.services.creation import (
    ARTIFACTS_STEP,
    SETUP_STEP,
    START_TASK,
    TIMEOUT_ANNOTATION,
    create_build,
    permutation_count,
    skips_checkout,
    timeout_seconds_of,
)
from builds.services.credentials import (
    CredentialRefused,
    checkout_auth,
    checkout_url,
    clone_credential_name,
    config_parent,
    issue_checkout_credential,
    revoke_checkout_credential,
)
from builds.services.locks import lock_pipeline
from builds.services.retries import RETRIES_ANNOTATION, retries_of, retry_lost_build
from builds.services.settle import (
    create_start_builds,
    release_after_waits,
    release_frozen,
    release_remotely_blocked,
    remote_parent_ended,
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
    update_steps,
)

__all__ = [
    "ARTIFACTS_STEP",
    "RETRIES_ANNOTATION",
    "SETUP_STEP",
    "START_GRACE",
    "START_TASK",
    "TIMEOUT_ANNOTATION",
    "CredentialRefused",
    "TransitionError",
    "abort_build",
    "checkout_auth",
    "checkout_url",
    "clone_credential_name",
    "config_parent",
    "create_build",
    "create_start_builds",
    "deep_merge",
    "fail_lost_build",
    "finish_build",
    "issue_checkout_credential",
    "lock_pipeline",
    "mark_running",
    "permutation_count",
    "refresh_event_status",
    "release_after_waits",
    "release_frozen",
    "release_remotely_blocked",
    "remote_parent_ended",
    "renew_lease",
    "retries_of",
    "retry_lost_build",
    "revoke_checkout_credential",
    "skips_checkout",
    "skips_further",
    "stop_event",
    "timeout_seconds_of",
    "update_step",
    "update_steps",
]
