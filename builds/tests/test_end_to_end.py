"""From a push to finished builds: real git, the real worker, the real launcher over HTTP."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.dispatch import reap
from builds.models import Build, BuildStatus, Step
from builds.tests.step_logs import step_log
from conftest import wait_until
from executors.tests.secret_forms import base64_cores
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DIAMOND = """
shared:
  image: buildpack-deps
jobs:
  main:
    requires: [~commit]
    steps:
      - hello: echo "main on $SD_BUILD_SHA"
      - version: meta set app.version 1.2.3
  publish:
    requires: [main]
    steps:
      - publish: echo "publish $(meta get app.version)"
  docs:
    requires: [main]
    steps:
      - docs: %(docs)s
  deploy:
    requires: [publish, docs]
    steps:
      - deploy: echo "deploy $(meta get app.version)"
"""


def _admin() -> User:
    return User.objects.create_user(username="alice", password="pw-alice-123")


def _builds_by_job(event: Event) -> dict[str, list[Build]]:
    out: dict[str, list[Build]] = {}
    for build in Build.objects.filter(event=event).select_related("job").order_by("id"):
        out.setdefault(build.job.name, []).append(build)
    return out


def _event_done(pipeline: Pipeline) -> Event | None:
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").first()
    if event is None:
        return None
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


def test_one_push_runs_main_publish_docs_then_deploy_exactly_once(stack, make_repo) -> None:
    repo = make_repo({"screwdriver.yaml": DIAMOND % {"docs": "echo docs"}})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    assert pipeline.hook_installed

    sha = repo.push({"README.md": "v2"}, "second commit")

    event = wait_until(lambda: _event_done(pipeline), timeout=60, what="the pushed event to finish")
    assert event.sha == sha
    assert event.status == Event.Status.SUCCESS
    builds = _builds_by_job(event)
    assert {name: [b.status for b in bs] for name, bs in builds.items()} == {
        "main": ["SUCCESS"],
        "publish": ["SUCCESS"],
        "docs": ["SUCCESS"],
        "deploy": ["SUCCESS"],
    }
    times = {n: (bs[0].start_time, bs[0].end_time) for n, bs in builds.items()}
    assert all(start and end for start, end in times.values())
    # Every build says when it entered the queue and which machine ran its launcher.
    assert all({"queueEnterTime", "hostname"} <= set(bs[0].stats) for bs in builds.values())
    main_end = times["main"][1]
    assert main_end <= times["publish"][0] and main_end <= times["docs"][0]  # type: ignore[operator]
    assert times["deploy"][0] >= max(times["publish"][1], times["docs"][1])  # type: ignore[operator,type-var]
    deploy = builds["deploy"][0]
    assert step_log(deploy, "deploy") == ["deploy 1.2.3"]
    assert step_log(builds["main"][0], "hello") == [f"main on {sha}"]


def test_when_a_parent_fails_the_join_never_runs(stack, make_repo) -> None:
    repo = make_repo({"screwdriver.yaml": DIAMOND % {"docs": "echo broken docs; exit 3"}})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))

    done = wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")
    assert done.pk == event.pk
    builds = _builds_by_job(event)
    assert builds["docs"][0].status == BuildStatus.FAILURE
    assert builds["publish"][0].status == BuildStatus.SUCCESS
    assert "deploy" not in builds
    assert done.status == Event.Status.FAILURE
    assert Step.objects.get(build=builds["docs"][0], name="docs").code == 3


STEPS = """
shared:
  image: buildpack-deps
jobs:
  main:
    requires: [~commit]
    steps:
      - setup: |
          export GREETING="hello there"
          mkdir -p sub/dir && cd sub/dir
      - check: echo "$GREETING from $(basename "$PWD")"
      - fail: |
          echo before
          false
          echo never printed
      - skipped: echo "must not run"
      - teardown-report: echo "teardown saw $SD_STEP_EXIT_CODE in $SD_STEP_NAME"
"""


def test_export_and_cd_persist_and_teardown_sees_the_failure(stack, make_repo) -> None:
    repo = make_repo({"screwdriver.yaml": STEPS})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")

    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.FAILURE
    codes = {s.name: s.code for s in build.steps.all()}
    assert codes["sd-setup-scm"] == 0
    assert codes["setup"] == 0 and codes["check"] == 0
    assert codes["fail"] == 1
    assert codes["skipped"] is None
    assert codes["teardown-report"] == 0
    assert step_log(build, "check") == ["hello there from dir"]
    assert step_log(build, "fail") == ["before"]
    assert step_log(build, "teardown-report") == ["teardown saw 1 in teardown-report"]


MONOREPO_APP = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - where: |
          pwd
          echo "$SD_SOURCE_DIR"
          echo "$SD_CHECKOUT_DIR"
          cat VERSION
      - top: cat "$SD_CHECKOUT_DIR/README.md"
"""


def test_a_pipeline_of_a_folder_builds_in_that_folder_of_the_checkout(stack, make_repo) -> None:
    repo = make_repo(
        {
            "README.md": "the monorepo",
            "screwdriver.yaml": "jobs: {}\n",
            "app/screwdriver.yaml": MONOREPO_APP,
            "app/VERSION": "4.5.6",
        },
        "mono",
    )
    pipeline = create_pipeline(checkout_url=f"{repo.bare}#main:app", user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")

    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.SUCCESS, {s.name: s.code for s in build.steps.all()}
    pwd, source_dir, checkout_dir, version = step_log(build, "where")
    assert pwd == source_dir == f"{checkout_dir}/app"
    assert Path(checkout_dir).name == "mono"
    assert version == "4.5.6"
    assert step_log(build, "top") == ["the monorepo"]


def test_a_hundred_thousand_lines_are_stored_without_a_gap_and_read_page_by_page(
    stack, make_repo
) -> None:
    yaml = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        "    steps:\n      - flood: seq 0 99999\n"
    )
    repo = make_repo({"screwdriver.yaml": yaml})
    user = _admin()
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=120, what="the flood to finish")
    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.SUCCESS
    step = Step.objects.get(build=build, name="flood")
    assert step.lines == 100_000

    client = APIClient()
    client.force_authenticate(user)
    seen = 0
    start = 0
    while True:
        response = client.get(
            f"/v4/builds/{build.pk}/steps/flood/logs", {"from": start, "pages": 10}
        )
        assert response.status_code == 200
        lines = response.json()
        for line in lines:
            assert line["n"] == seen and line["m"] == str(seen) and line["s"] == "flood"
            seen += 1
        if response["X-More-Data"] == "false":
            break
        assert lines, "more data promised but an empty page returned"
        start = lines[-1]["n"] + 1
    assert seen == 100_000


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


STUBBORN = """
annotations:
  screwdriver.cd/timeout: %(timeout)s
jobs:
  main:
    image: alpine
    requires: [~commit]
    annotations:
      screwdriver.cd/timeout: %(timeout)s
    steps:
      - stubborn: |
          export SD_TEST_MARKER=%(marker)s
          sh -c 'trap "" TERM; while true; do sleep 1; done' &
          setsid sh -c 'trap "" TERM; while true; do sleep 1; done' &
          echo started
          sleep 600
      - teardown-after: echo "teardown ran with $SD_STEP_EXIT_CODE"
"""


def test_a_build_past_its_timeout_ends_within_ten_seconds_leaving_no_process(
    stack, make_repo
) -> None:
    marker = f"timeout-{os.getpid()}-{time.monotonic_ns()}"
    yaml = STUBBORN % {"timeout": "0.1", "marker": marker}  # six seconds
    repo = make_repo({"screwdriver.yaml": yaml})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    build = wait_until(
        lambda: Build.objects.filter(event=event, status="RUNNING").first(),
        timeout=30,
        what="RUNNING",
    )
    wait_until(lambda: _processes_with(marker), timeout=20, what="the stubborn step to start")
    deadline = build.start_time.timestamp() + 6
    wait_until(lambda: _event_done(pipeline), timeout=40, what="the timed-out build to end")
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert "timed out" in build.status_message
    assert build.end_time.timestamp() - deadline < 10
    assert (
        wait_until(lambda: not _processes_with(marker), timeout=5, what="no process left")
        is not None
    )
    assert step_log(build, "teardown-after")[0].startswith("teardown ran with")


def test_a_stopped_build_ends_within_ten_seconds_runs_teardown_and_leaves_no_process(
    stack, make_repo
) -> None:
    marker = f"stop-{os.getpid()}-{time.monotonic_ns()}"
    repo = make_repo({"screwdriver.yaml": STUBBORN % {"timeout": "30", "marker": marker}})
    user = _admin()
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    build = wait_until(
        lambda: Build.objects.filter(event=event, status="RUNNING").first(),
        timeout=30,
        what="RUNNING",
    )
    wait_until(lambda: _processes_with(marker), timeout=20, what="the stubborn step to start")

    client = APIClient()
    client.force_authenticate(user)
    asked = time.time()
    response = client.put(f"/v4/builds/{build.pk}", {"status": "ABORTED"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ABORTED"

    wait_until(lambda: not _processes_with(marker), timeout=10, what="the step's processes to end")
    assert time.time() - asked < 10
    teardown = Step.objects.get(build=build, name="teardown-after")
    wait_until(
        lambda: Step.objects.get(pk=teardown.pk).end_time, timeout=10, what="teardown to finish"
    )
    assert step_log(build, "teardown-after")[0].startswith("teardown ran with")
    build.refresh_from_db()
    assert build.status == BuildStatus.ABORTED


def test_killing_the_worker_and_launcher_leaves_no_build_running(stack, make_repo) -> None:
    marker = f"kill-{os.getpid()}-{time.monotonic_ns()}"
    repo = make_repo({"screwdriver.yaml": STUBBORN % {"timeout": "30", "marker": marker}})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    build = wait_until(
        lambda: Build.objects.filter(event=event, status="RUNNING").first(),
        timeout=30,
        what="RUNNING",
    )
    wait_until(lambda: _processes_with(marker), timeout=20, what="the step to start")
    build.refresh_from_db()
    # The whole machine's share of this build dies at once: the worker and the launcher.
    stack.kill_worker()
    os.killpg(build.executor_state["pid"], signal.SIGKILL)
    killed_at = time.time()

    # A new worker comes up and its reaper runs (the schedule calls exactly this).
    stack.start_worker()
    wait_until(
        lambda: reap()["failed"] or Build.objects.get(pk=build.pk).status == "FAILURE",
        timeout=60,
        interval=1,
    )
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILURE
    assert "was lost: it stopped reporting" in build.status_message
    assert time.time() - killed_at < 120
    # Cleanup of the lost build ends the step processes the launcher left behind.
    wait_until(
        lambda: not _processes_with(marker), timeout=60, interval=1, what="orphans cleaned up"
    )


SECRETS = """
shared:
  image: buildpack-deps
jobs:
  main:
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    environment:
      TARGET: "prod-$SD_BUILD_ID"
    steps:
      - use: |
          echo "key is $DEPLOY_KEY"
          echo "target is $TARGET"
          test "$DEPLOY_KEY" = "s3cr3t-value"
      - unlisted: echo "other is [$OTHER_SECRET]"
"""


def test_a_listed_secret_reaches_the_build_masked_and_an_unlisted_one_does_not(
    stack, make_repo
) -> None:
    from pipelines.services import set_secret

    repo = make_repo({"screwdriver.yaml": SECRETS})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    set_secret(pipeline=pipeline, name="DEPLOY_KEY", value="s3cr3t-value")
    set_secret(pipeline=pipeline, name="OTHER_SECRET", value="not-for-this-job")
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")

    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.SUCCESS
    assert step_log(build, "use") == ["key is ****", f"target is prod-{build.pk}"]
    assert step_log(build, "unlisted") == ["other is []"]
    from pipelines.models import Secret

    assert "s3cr3t" not in Secret.objects.get(name="DEPLOY_KEY").encrypted_value


def test_a_build_outlives_a_killed_worker_because_it_is_its_own_process(stack, make_repo) -> None:
    yaml = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        "    steps:\n      - slow: sleep 2 && echo survived\n"
    )
    repo = make_repo({"screwdriver.yaml": yaml})
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=_admin())
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(
        lambda: Build.objects.filter(event=event, status="RUNNING").exists(),
        timeout=30,
        what="RUNNING",
    )
    stack.kill_worker()

    wait_until(
        lambda: _event_done(pipeline), timeout=30, what="the build to finish without a worker"
    )
    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.SUCCESS
    assert step_log(build, "slow") == ["survived"]


ENCODINGS = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    steps:
      - encode: |
          printf %s "$DEPLOY_KEY" | base64
          printf 'x%s' "$DEPLOY_KEY" | base64
          printf 'xy%s\\n' "$DEPLOY_KEY" | base64
          printf %s "$DEPLOY_KEY" | base64 | tr '+/' '-_' | tr -d '='
          printf '%s\\n' "$DEPLOY_KEY" | cut -c1-9
          printf '%s\\n' "$DEPLOY_KEY" | cut -c10-
          printf 'tail %s' "$DEPLOY_KEY" | fold -w 13
          meta set leaked "$DEPLOY_KEY"
          meta set --json-value nested "{\\"k\\": [\\"x$DEPLOY_KEY\\"]}"
"""


def _secret_forms(secret: str) -> set[str]:
    return {secret} | base64_cores(secret)


def test_a_real_build_printing_encodings_of_a_secret_and_setting_it_in_meta_shows_none(
    stack, make_repo
) -> None:
    from pipelines.services import set_secret

    secret = "e2e/s3cr3t+value?with&chars"
    repo = make_repo({"screwdriver.yaml": ENCODINGS})
    user = _admin()
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    set_secret(pipeline=pipeline, name="DEPLOY_KEY", value=secret)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=60, what="the event to finish")
    build = Build.objects.get(event=event)
    assert build.status == BuildStatus.SUCCESS, build.status_message

    client = APIClient()
    client.force_authenticate(user)
    logs = client.get(f"/v4/builds/{build.pk}/steps/encode/logs")
    assert len(logs.json()) >= 8  # the step did print its lines
    shown = "\n".join(
        [
            logs.content.decode(),
            client.get(f"/v4/builds/{build.pk}").content.decode(),
            client.get(f"/v4/jobs/{build.job_id}/lastSuccessfulMeta").content.decode(),
        ]
    )
    assert not [form for form in _secret_forms(secret) if form in shown]
    assert client.get(f"/v4/jobs/{build.job_id}/lastSuccessfulMeta").json()["leaked"] == "****"
