"""The outbox: what follows a build's final status survives a process killed after commit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.utils import timezone

from builds import lifecycle, outbox
from builds import services as build_services
from builds.models import Build, BuildStatus, OutboxMessage
from conftest import BASE_DIR, GitRepo, database_url
from pipelines.models import Event
from pipelines.services import Creator, create_pipeline, start_event
from scm.tests.github_fakes import HEAD_SHA, SECRET, fake_github
from scm.tests.scm_people import repository_admin

STATUSES = "https://api.github.com/repos/Codertocat/Hello-World/statuses/" + HEAD_SHA

DOWNSTREAM = """
jobs:
  after:
    image: alpine
    requires: [~sd@{A}:main]
    steps:
      - after: echo after
"""

# Finishes a build, then dies right after the commit: the kill is the first callback the
# commit runs, before any after-commit work (the outbox's nudge) could.
FINISH_THEN_DIE = """
import os, signal, sys
import django
django.setup()
from django.db import transaction
from builds import services
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    services.finish_build(build_id=int(sys.argv[1]), status="SUCCESS")
"""


@pytest.fixture
def github(settings: Any) -> Iterator[respx.Router]:
    """GitHub's API at the HTTP boundary; tasks stay in the queue, no worker runs them."""
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_UI_URL = "https://sd.example.com"
    settings.SD_API_URL = "http://127.0.0.1:9"
    with respx.mock(assert_all_called=False) as router:
        fake_github(router, ("Codertocat/Hello-World",))
        router.post(STATUSES).mock(return_value=httpx.Response(201, json={}))
        yield router


def posted_states(router: respx.Router) -> list[str]:
    return [
        json.loads(call.request.content)["state"]
        for call in router.calls
        if str(call.request.url) == STATUSES
    ]


@pytest.mark.django_db(transaction=True)
def test_a_process_killed_right_after_a_builds_final_commit_loses_nothing_that_follows(
    github: respx.Router, make_repo: Any, settings: Any, tmp_path: Path
) -> None:
    octo = repository_admin("octo")
    upstream = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=octo
    )
    repo: GitRepo = make_repo({"screwdriver.yaml": DOWNSTREAM.replace("{A}", str(upstream.pk))})
    downstream = create_pipeline(checkout_url=repo.checkout_url, user=octo)
    event = start_event(
        pipeline=upstream, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.get(event=event, job__name="main")
    build_services.mark_running(build_id=build.pk)
    # What the local engine left while the build ran: its workspace and a step's process.
    workspace = Path(settings.SD_WORKSPACES_DIR) / f"build-{build.pk}"
    workspace.mkdir(parents=True)
    (workspace / "output.txt").write_text("built")
    leftover = subprocess.Popen(
        ["sleep", "300"], env={"SD_ROOT_DIR": str(workspace)}, start_new_session=True
    )
    Build.objects.filter(pk=build.pk).update(dispatched_at=timezone.now(), executor="local")

    child = subprocess.run(
        [sys.executable, "-c", FINISH_THEN_DIE, str(build.pk)],
        cwd=BASE_DIR,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings",
            "DATABASE_URL": database_url(),
            "SD_DATA_DIR": str(settings.SD_DATA_DIR),
            "SD_SECRET_KEY": django_settings.SECRET_KEY,
            "SD_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        timeout=120,
    )

    try:
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()
        assert Build.objects.get(pk=build.pk).status == BuildStatus.SUCCESS
        due = OutboxMessage.objects.filter(build=build, status=BuildStatus.SUCCESS)
        assert sorted(due.values_list("handler", flat=True)) == [
            "clone-credential-revoke",
            "commit-status",
            "executor-cleanup",
            "remote-triggers",
        ]
        assert not due.exclude(done_at__isnull=True).exists()
        assert not Event.objects.filter(pipeline=downstream).exists()
        assert "success" not in posted_states(github)
        assert workspace.exists() and leftover.poll() is None

        # The periodic sweep, run twice as two workers' schedules could.
        outbox.sweep()
        outbox.sweep()

        started = Event.objects.filter(pipeline=downstream)
        assert [e.start_from for e in started] == [f"~sd@{upstream.pk}:main"]
        assert Build.objects.filter(event__in=started, job__name="after").count() == 1
        assert posted_states(github).count("success") == 1
        assert posted_states(github)[-1] == "success"
        assert not workspace.exists()
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        for row in due:
            assert (row.done_at is not None, row.attempts, row.error) == (True, 1, "")
    finally:
        if leftover.poll() is None:
            leftover.kill()


@pytest.fixture
def build_of_github(github: respx.Router) -> Build:
    octo = repository_admin("octo")
    pipeline = create_pipeline(
        checkout_url="https://github.com/Codertocat/Hello-World.git#master", user=octo
    )
    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="o", username="o")
    )
    return Build.objects.get(event=event, job__name="main")


@pytest.mark.django_db
def test_a_queued_build_that_waited_and_collapsed_does_not_stay_pending_on_its_commit(
    github: respx.Router, build_of_github: Build
) -> None:
    build = build_of_github
    lifecycle.transition(build.pk, BuildStatus.BLOCKED)
    lifecycle.transition(build.pk, BuildStatus.COLLAPSED)

    outbox.dispatch()

    # The "queued" row is superseded; only the build's last word is posted.
    assert posted_states(github) == ["error"]
    assert not OutboxMessage.objects.filter(done_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_failing_handler_is_retried_later_and_given_up_after_its_last_try(
    github: respx.Router, build_of_github: Build
) -> None:
    github.post(STATUSES).mock(side_effect=RuntimeError("GitHub fell over"))
    row = OutboxMessage.objects.get(build=build_of_github, handler="commit-status")

    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        OutboxMessage.objects.filter(pk=row.pk).update(due_at=timezone.now())
        outbox.sweep()
        row.refresh_from_db()
        assert row.attempts == attempt
        assert "GitHub fell over" in row.error
        if attempt < outbox.MAX_ATTEMPTS:
            # Backed off: not due again for a minute or more.
            assert row.done_at is None and row.due_at > timezone.now()
    assert row.done_at is not None

    OutboxMessage.objects.filter(pk=row.pk).update(due_at=timezone.now())
    assert outbox.sweep()["ran"] == 0


@pytest.mark.django_db
def test_a_row_whose_worker_died_every_time_is_given_up_by_the_sweep(
    build_of_github: Build,
) -> None:
    row = OutboxMessage.objects.get(build=build_of_github, handler="commit-status")
    # Claimed as often as allowed, each claim lapsed: the worker was killed mid-handler.
    OutboxMessage.objects.filter(pk=row.pk).update(
        attempts=outbox.MAX_ATTEMPTS, due_at=timezone.now()
    )

    assert outbox.sweep()["given_up"] == 1
    row.refresh_from_db()
    assert row.done_at is not None and "worker running it died" in row.error


@pytest.mark.django_db
def test_a_nudge_runs_its_fresh_rows_whatever_the_clocks_say(
    github: respx.Router, build_of_github: Build
) -> None:
    row = OutboxMessage.objects.get(build=build_of_github, handler="commit-status")
    # Written (with the build's other rows) by a process whose clock runs ahead of the worker's.
    OutboxMessage.objects.filter(build=build_of_github).update(
        due_at=timezone.now() + timedelta(minutes=5)
    )

    assert outbox.sweep()["ran"] == 0
    assert outbox.dispatch(ids=[row.pk]) == 1
    assert posted_states(github) == ["pending"]


def _queued_dispatches() -> list[list[int]]:
    from django_q.models import OrmQ

    return [
        list(task.task["args"][0])
        for task in OrmQ.objects.order_by("pk")
        if task.task["func"] == outbox.DISPATCH_TASK
    ]


@pytest.mark.django_db
def test_a_change_queues_one_task_for_its_rows_and_the_worker_gives_the_others_their_own(
    github: respx.Router, build_of_github: Build, django_capture_on_commit_callbacks: Any
) -> None:
    from django_q.models import OrmQ

    from builds import tasks

    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        ids = outbox.record(build_id=build_of_github.pk, status=BuildStatus.SUCCESS)

    assert len(ids) > 2
    assert _queued_dispatches() == [ids]

    tasks.dispatch_outbox(ids)

    assert _queued_dispatches() == [ids, *([row] for row in ids[1:])]
    done = OutboxMessage.objects.filter(done_at__isnull=False).values_list("pk", flat=True)
    assert list(done) == [ids[0]]
    # The first row (the commit status) ran: it reports the build's current state.
    assert posted_states(github) == ["pending"]


LOCAL = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    steps:
      - hello: echo hi
  announced:
    requires: [~commit]
    settings:
      email: [team@example.com]
    steps:
      - hello: echo hi
"""


@pytest.mark.django_db
def test_a_build_gets_rows_only_for_the_handlers_that_can_concern_it(
    github: respx.Router, build_of_github: Build, make_repo: Any
) -> None:
    local = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": LOCAL}).checkout_url,
        user=User.objects.get(username="octo"),
    )
    event = start_event(
        pipeline=local, start_from="~commit", creator=Creator(name="o", username="o")
    )
    build = Build.objects.get(event=event, job__name="main")

    def handlers(of: Build, status: str) -> list[str]:
        rows = OutboxMessage.objects.filter(build=of, status=status)
        return sorted(rows.values_list("handler", flat=True))

    # A repository on disk has no commit statuses, a branch's build no pull request, and a
    # job without notification settings no notices.
    assert handlers(build, BuildStatus.QUEUED) == []
    lifecycle.transition(build.pk, BuildStatus.RUNNING)
    lifecycle.transition(build.pk, BuildStatus.SUCCESS)
    assert handlers(build, BuildStatus.SUCCESS) == [
        "clone-credential-revoke",
        "executor-cleanup",
        "remote-triggers",
    ]
    announced = Build.objects.get(event=event, job__name="announced")
    assert handlers(announced, BuildStatus.QUEUED) == ["notify"]

    assert handlers(build_of_github, BuildStatus.QUEUED) == ["commit-status"]
    Event.objects.filter(pk=build_of_github.event_id).update(type=Event.Type.PR, pr_num=7)
    lifecycle.transition(build_of_github.pk, BuildStatus.RUNNING)
    lifecycle.transition(build_of_github.pk, BuildStatus.FAILURE)
    assert handlers(build_of_github, BuildStatus.FAILURE) == [
        "clone-credential-revoke",
        "commit-status",
        "executor-cleanup",
        "pr-feedback",
        "remote-triggers",
    ]
