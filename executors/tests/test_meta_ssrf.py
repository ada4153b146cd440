"""`meta get --external` asks only the build's own API, whatever URL or token a step passes."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.logs import read_page
from builds.models import Build, BuildStatus, Step
from conftest import GitRepo, wait_until
from executors.launcher import meta
from executors.launcher.agent import prepare_control_dir
from executors.launcher.metaserver import MetaServer
from executors.launcher.workspace import Workspace
from executors.tests.docker_engine import IMAGE as docker_stack_image
from pipelines.models import Event
from pipelines.services import Creator, create_pipeline, start_event


@pytest.fixture
def stack_env() -> dict[str, str]:
    """The container test picks the Docker executor, which a server allows only when told to."""
    return {"SD_EXECUTORS": "docker"}


class Recorder:
    """A local HTTP server that writes down every request and answers with a JSON object."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.requests: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append((self.path, self.headers.get("Authorization", "")))
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[Recorder]:
    """Stands for a cloud metadata service or an internal host a step must not reach."""
    server = Recorder({"secret": "instance-credentials"})
    yield server
    server.close()


@pytest.fixture
def api() -> Iterator[Recorder]:
    """Stands for the build's own API."""
    server = Recorder({"version": "1.2.3"})
    yield server
    server.close()


def test_meta_ignores_a_per_call_api_url_and_token_and_asks_the_builds_own_api(
    tmp_path: Path, trap: Recorder, api: Recorder
) -> None:
    path = tmp_path / "meta.json"
    path.write_text("{}")
    environ = {"SD_API_URL": api.url, "SD_TOKEN": "build-token", "SD_PIPELINE_ID": "3"}
    argv = ["get", "version", "--external", "sd@7:publish"]
    argv += ["-u", f"{trap.url}/latest/meta-data/?", "--sd-token=stolen"]

    assert meta.run(argv, path, environ) == (0, "1.2.3\n", "")

    assert trap.requests == []
    assert api.requests == [
        ("/v4/pipelines/7/jobs/publish/lastSuccessfulMeta", "Bearer build-token")
    ]


def test_an_external_job_that_is_not_ascii_digits_and_a_name_never_reaches_the_url(
    tmp_path: Path, api: Recorder
) -> None:
    path = tmp_path / "meta.json"
    path.write_text("{}")
    environ = {"SD_API_URL": api.url, "SD_TOKEN": "t", "SD_PIPELINE_ID": "3"}

    # Arabic-Indic digits match `\d`; a path in the job name would leave the jobs route.
    for external in ("sd@\u0661\u0662:publish", "sd@1:../../x", "../admin"):
        code, _, err = meta.run(["get", "v", "--external", external], path, environ)
        assert code == 1, external
        assert "is not sd@PIPELINE:JOB" in err

    assert api.requests == []


def test_the_host_side_meta_server_asks_the_launchers_api_not_the_steps_environment(
    tmp_path: Path, trap: Recorder, api: Recorder
) -> None:
    workspace = Workspace(tmp_path / "ws")
    control = prepare_control_dir(tmp_path / ".sd-agent")
    workspace.prepare({}, control)
    # The job's environment or a secret could have pointed SD_API_URL and SD_TOKEN anywhere.
    steps_environ = {"SD_API_URL": trap.url, "SD_TOKEN": "stolen", "SD_PIPELINE_ID": "3"}
    server = MetaServer(
        control, workspace.meta_path, steps_environ, api_url=f"{api.url}/v4", token="build-token"
    )
    server.start()
    try:
        done = subprocess.run(
            [
                "sh",
                str(workspace.bin / "meta"),
                "get",
                "version",
                "--external",
                "sd@7:publish",
                "-u",
                f"{trap.url}/latest/meta-data/iam?",
                "-t",
                "stolen",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.close()

    assert (done.returncode, done.stdout, done.stderr) == (0, "1.2.3\n", "")
    assert trap.requests == []
    assert api.requests == [
        ("/v4/pipelines/7/jobs/publish/lastSuccessfulMeta", "Bearer build-token")
    ]


SSRF = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    steps:
      - probe: |
          meta get secret --external sd@1:x -u "{trap}/latest/meta-data/?" -t stolen 2>&1 || :
          echo probed
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_build_cannot_point_meta_get_external_at_another_host(
    stack: Any, make_repo: Any, trap: Recorder
) -> None:
    repo: GitRepo = make_repo({"screwdriver.yaml": SSRF.format(trap=trap.url)})
    user = User.objects.get_or_create(username="alice")[0]
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event: Event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice")
    )

    def finished() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    build = wait_until(finished, timeout=90, what="the build to finish")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    log = [m["m"] for m in read_page(step=Step.objects.get(build=build, name="probe")).lines]
    assert log[-1] == "probed"
    assert "instance-credentials" not in "\n".join(log)
    assert trap.requests == []


IN_CONTAINER = """
jobs:
  main:
    image: {image}
    annotations:
      screwdriver.cd/executor: docker
    requires: [~commit]
    environment:
      SD_API_URL: "{trap}/from-the-job-environment/"
    steps:
      - probe: |
          meta get secret --external sd@1:x -u "{trap}/latest/meta-data/?" -t stolen 2>&1 || :
          echo probed
"""


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_container_build_cannot_make_the_host_side_meta_server_fetch_another_host(
    docker_stack: Any, make_repo: Any, trap: Recorder
) -> None:
    text = IN_CONTAINER.format(image=docker_stack_image, trap=trap.url)
    repo: GitRepo = make_repo({"screwdriver.yaml": text})
    user = User.objects.get_or_create(username="alice")[0]
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("Alice", "alice"))

    def finished() -> Build | None:
        build = Build.objects.filter(event=event).first()
        if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
            return None
        return build

    build = wait_until(finished, timeout=90, what="the container build to finish")

    assert build.status == BuildStatus.SUCCESS, build.status_message
    assert build.executor == "docker"
    log = [m["m"] for m in read_page(step=Step.objects.get(build=build, name="probe")).lines]
    assert log[-1] == "probed"
    assert "instance-credentials" not in "\n".join(log)
    assert trap.requests == []
