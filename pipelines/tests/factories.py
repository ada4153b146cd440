"""Pipelines, events and builds for tests where git is not the subject: no repository is read.

`make_pipeline` writes finished rows straight to the database. `pipeline_from_yaml` and
`event_from_yaml_pipeline` go through the real services from the point where the SCM has been
read: the config is parsed from the text given, and the commit is one the test names.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User

from builds.models import Build, BuildStatus, Step
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from pipelines.services import Checkout, Creator, parse_config, start_event_at, sync_jobs
from scm.base import CommitInfo

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def make_pipeline(*, jobs: int = 2, events: int = 2, name: str = "local/repo") -> Pipeline:
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/{name}:main",
        checkout_url=f"/srv/{name}.git#main",
        scm_repo={"name": name, "branch": "main", "private": False},
        workflow_graph={
            "nodes": [{"name": "~commit"}] + [{"name": f"job{i}"} for i in range(jobs)],
            "edges": [{"src": "~commit", "dest": "job0"}]
            + [{"src": f"job{i - 1}", "dest": f"job{i}"} for i in range(1, jobs)],
        },
    )
    alice = User.objects.filter(username="alice").first()
    if alice is not None:
        PipelinePermission.objects.create(pipeline=pipeline, user=alice, role="admin")
    job_rows = [Job.objects.create(pipeline=pipeline, name=f"job{i}") for i in range(jobs)]
    for e in range(events):
        event = Event.objects.create(
            pipeline=pipeline,
            sha=f"{e:040d}",
            start_from="~commit",
            commit={"message": f"commit {e}\n\nsecond paragraph"},
            creator={"name": "Alice", "username": "alice"},
            cause_message="Started by alice",
            status=Event.Status.SUCCESS,
        )
        for n, job in enumerate(job_rows):
            build = Build.objects.create(
                job=job, event=event, number=e * 1000 + n, sha=event.sha, status=BuildStatus.SUCCESS
            )
            Step.objects.create(build=build, position=0, name="sd-setup-scm", code=0)
        Pipeline.objects.filter(pk=pipeline.pk).update(last_event=event)
    pipeline.refresh_from_db()
    return pipeline


ALICE = Creator("Alice", "alice")


def sha_of(text: str) -> str:
    """A stand-in commit sha for a file's text: the same text, the same commit."""
    return hashlib.sha1(text.encode()).hexdigest()


def pipeline_from_yaml(
    text: str, *, owner: User | None = None, name: str = "local/app", private: bool = False
) -> Pipeline:
    """A pipeline whose branch head holds `text` as its screwdriver.yaml, made without git.

    `owner` becomes its creator and admin, as `create_pipeline` makes them.
    """
    sha = sha_of(text)
    pipeline = Pipeline.objects.create(
        name=name,
        scm_uri=f"local:/srv/{name}.git:main",
        scm_context="local",
        checkout_url=f"file:///srv/{name}.git#main",
        scm_repo={
            "name": name,
            "branch": "main",
            "url": f"file:///srv/{name}.git#main",
            "rootDir": "",
            "private": private,
        },
        creator=owner,
        admins={owner.get_username(): True} if owner else {},
        last_seen_sha=sha,
    )
    if owner is not None:
        PipelinePermission.objects.create(
            pipeline=pipeline, user=owner, role="admin", granted_by=owner.get_username()
        )
    sync_jobs(pipeline=pipeline, config=parse_config(text))
    pipeline.refresh_from_db()
    return pipeline


def event_from_yaml(
    pipeline: Pipeline,
    text: str,
    *,
    start_from: str = "~commit",
    creator: Creator = ALICE,
    **kwargs: Any,
) -> Event:
    """`start_event` at the commit whose screwdriver.yaml is `text`, without reading git.

    The commit is the branch head when `text` is what the pipeline was made from; keyword
    arguments (meta, parent_event, changed_files, ...) are `start_event`'s.
    """
    sha = sha_of(text)
    commit = CommitInfo(
        sha=sha,
        message="change",
        author_name="Alice",
        author_email="alice@example.com",
        committed_at=datetime(2026, 1, 1, tzinfo=UTC),
        url="",
    )
    head = Pipeline.objects.values_list("last_seen_sha", flat=True).get(pk=pipeline.pk)
    checkout = Checkout(
        sha=sha, branch="main", commit=commit, config=parse_config(text), at_head=sha == head
    )
    return start_event_at(
        pipeline=pipeline, checkout=checkout, start_from=start_from, creator=creator, **kwargs
    )
