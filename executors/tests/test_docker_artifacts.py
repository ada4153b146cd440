"""A build in a container publishes its artifacts; links its root planted are not followed.

The launcher runs on this machine (as the server's user, root here) and walks the workspace
the container shared with it: a link to /etc/shadow left by the container's root would be
this machine's /etc/shadow if it were followed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.artifacts import artifacts_of
from builds.models import Build, BuildStatus, Step
from builds.tests.step_logs import step_log
from conftest import wait_until
from executors.tests.docker_engine import IMAGE
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from screwdriver_site.outputs import read_chunks

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Jobs here pick the Docker executor, which a server allows only when told to."""
    return {"SD_EXECUTORS": "docker"}


JOB = f"""
jobs:
  main:
    image: {IMAGE}
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: docker
    steps:
      - make: |
          cd "$SD_ARTIFACTS_DIR"
          echo "from the container" > notes.txt
          mkdir -p sub
          echo nested > sub/file.txt
          head -c 5242880 /dev/urandom > blob.bin
          meta set blob.sha256 "$(sha256sum blob.bin | cut -c1-64)"
          ln -s /etc/shadow shadow
          ln -s / host-root
"""


def _event_done(pipeline: Pipeline) -> Event | None:
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").first()
    if event is None:
        return None
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


def test_a_container_build_publishes_its_files_and_none_of_its_links(
    docker_stack: Any, make_repo: Any
) -> None:
    repo = make_repo({"screwdriver.yaml": JOB})
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=120, what="the build to finish")

    build = Build.objects.get(event=event)
    publishing = step_log(build, "sd-teardown-artifacts")
    assert build.status == BuildStatus.SUCCESS, (build.status_message, publishing)
    assert build.executor == "docker"
    stored = {a.path: b"".join(read_chunks(a.storage_name)) for a in artifacts_of(build)}
    assert set(stored) == {
        "notes.txt",
        "sub/file.txt",
        "blob.bin",
        "steps.json",
        "environment.json",
        "manifest.txt",
    }
    assert stored["notes.txt"] == b"from the container\n"
    assert stored["sub/file.txt"] == b"nested\n"
    assert hashlib.sha256(stored["blob.bin"]).hexdigest() == build.meta["blob"]["sha256"]
    assert "shadow: skipped: a symbolic link is never followed." in publishing
    assert "host-root: skipped: a symbolic link is never followed." in publishing
    assert Step.objects.get(build=build, name="sd-teardown-artifacts").code == 0
