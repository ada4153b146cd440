"""Build caches in real builds: the real worker, launcher, sandbox and API, one pipeline's story.

Event 1 fills a pipeline-scoped cache, event 2 finds it, a pull request finds it and cannot
change it, an admin clears it through the API, and event 3 starts without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.logs import read_page
from builds.models import Build, BuildStatus, Cache, Step
from conftest import run_git, wait_until
from executors.launcher.sandbox import probe
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from pipelines.services.pull_requests import start_pr_event

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # Without a sandbox HOME is the server's, outside the workspace, and no pull request runs.
    pytest.mark.skipif(probe() is not None, reason=f"no sandbox here: {probe()}"),
]

YAML = """\
cache:
  pipeline: [~/.warm]
jobs:
  main:
    image: alpine
    requires: [~commit, ~pr]
    steps:
      - show: cat ~/.warm/value 2>/dev/null || echo "no cache"
      - write: mkdir -p ~/.warm && echo "from event $SD_EVENT_ID" > ~/.warm/value
"""
ALICE = Creator("Alice", "alice")


def log(build: Build, step: str) -> list[str]:
    return [line["m"] for line in read_page(step=Step.objects.get(build=build, name=step)).lines]


def everything(build: Build) -> dict[str, Any]:
    steps = {s.name: (s.code, log(build, s.name)) for s in Step.objects.filter(build=build)}
    return {"message": build.status_message, "steps": steps}


def finished(event: Event | None) -> Build:
    assert event is not None

    def done() -> Build | None:
        build = Build.objects.filter(event=event).first()
        return build if build is not None and build.is_finished else None

    build = wait_until(done, timeout=90, what="the build to finish")
    assert build.status == BuildStatus.SUCCESS, everything(build)
    return build


def test_a_pipeline_cache_is_kept_shared_read_only_to_pull_requests_and_cleared(
    stack: Any, make_repo: Any
) -> None:
    alice = User.objects.create_user(username="alice", password="pw-alice-123")
    repo = make_repo({"screwdriver.yaml": YAML})
    pipeline: Pipeline = create_pipeline(checkout_url=repo.checkout_url, user=alice)

    first = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE))
    assert log(first, "show") == ["no cache"]
    assert log(first, "sd-setup-cache") == ["No pipeline cache ~/.warm yet."]
    assert log(first, "sd-teardown-cache")[-1].startswith("Saved the pipeline cache ~/.warm")

    second = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE))
    assert log(second, "show") == [f"from event {first.event_id}"]
    saved = Cache.objects.get(pipeline=pipeline)
    assert saved.build_id == second.pk

    # The pull request's commit is on a branch of its own: a push to main would start an event.
    sha = repo.commit({"README.md": "a pull request's change"}, "the pull request's commit")
    run_git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=repo.work)
    pr_event = start_pr_event(
        pipeline=pipeline,
        pr_num=7,
        sha=sha,
        creator=Creator("Mallory", "mallory"),
        pr={"fork": False, "title": "t", "ref": "feature", "url": ""},
    )
    pull_request = finished(pr_event)
    assert log(pull_request, "show") == [f"from event {second.event_id}"]
    assert log(pull_request, "sd-teardown-cache") == [
        "Not saving the pipeline cache ~/.warm: a pull request's build does not change its "
        "pipeline's or its job's caches."
    ]
    unchanged = Cache.objects.get(pipeline=pipeline)
    assert (unchanged.build_id, unchanged.digest, unchanged.storage_name) == (
        second.pk,
        saved.digest,
        saved.storage_name,
    )

    admin = APIClient()
    admin.force_authenticate(alice)
    cleared = admin.delete(
        f"/v4/pipelines/{pipeline.pk}/caches?scope=pipelines&cacheId={pipeline.pk}"
    )
    assert cleared.status_code == 204

    third = finished(start_event(pipeline=pipeline, start_from="~commit", creator=ALICE))
    assert log(third, "show") == ["no cache"]
    assert log(third, "sd-setup-cache") == ["No pipeline cache ~/.warm yet."]
