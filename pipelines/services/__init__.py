"""State changes of pipelines, split by subject; callers import them from here."""

from __future__ import annotations

from pipelines.services.access import (
    NewToken,
    create_pipeline_token,
    create_secret,
    create_user_token,
    delete_secret,
    delete_token,
    refresh_token,
    revoke_user_jwts,
    set_secret,
    touch_token,
    update_secret,
    update_token,
)
from pipelines.services.collections import (
    add_to_collection,
    create_collection,
    delete_collection,
    remove_from_collection,
    update_collection,
)
from pipelines.services.events import (
    Creator,
    commit_json,
    creator_of,
    event_of_delivery,
    notice_push,
    start_event,
)
from pipelines.services.periodic import start_periodic_build
from pipelines.services.pipelines import (
    CONFIG_FILE,
    PipelineError,
    create_pipeline,
    delete_pipeline,
    grant_permission,
    install_hook,
    read_config,
    revoke_permission,
    scm_for,
    set_job_state,
    sync_jobs,
    sync_pipeline,
    update_pipeline,
)
from pipelines.services.pull_requests import close_pr, pr_job_name, start_pr_event, stop_pr_builds
from pipelines.services.restarts import restart_event
from pipelines.services.triggers import run_remote_triggers, trigger_remote_jobs

__all__ = [
    "CONFIG_FILE",
    "Creator",
    "NewToken",
    "PipelineError",
    "add_to_collection",
    "close_pr",
    "commit_json",
    "create_collection",
    "create_pipeline",
    "create_pipeline_token",
    "create_secret",
    "create_user_token",
    "creator_of",
    "delete_collection",
    "delete_pipeline",
    "delete_secret",
    "delete_token",
    "event_of_delivery",
    "grant_permission",
    "install_hook",
    "notice_push",
    "pr_job_name",
    "read_config",
    "refresh_token",
    "remove_from_collection",
    "restart_event",
    "revoke_permission",
    "revoke_user_jwts",
    "run_remote_triggers",
    "scm_for",
    "set_job_state",
    "set_secret",
    "start_event",
    "start_periodic_build",
    "start_pr_event",
    "stop_pr_builds",
    "sync_jobs",
    "sync_pipeline",
    "touch_token",
    "trigger_remote_jobs",
    "update_collection",
    "update_pipeline",
    "update_secret",
    "update_token",
]
