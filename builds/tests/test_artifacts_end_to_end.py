"""A real build publishes its artifacts: daphne as `make run` starts it, the real worker, the
real launcher, a local build (sandboxed where bubblewrap runs), and the outputs storage.

What the job writes in $SD_ARTIFACTS_DIR is read back from the storage and compared byte for
byte (sha256), whole and in ranges; links the job planted are not followed; the server's memory
stays flat while a 50 MB file goes through it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.artifacts import artifacts_of
from builds.models import Build, BuildStatus, Step
from builds.services import mark_running
from builds.tests.step_logs import step_log
from conftest import GitRepo, database_url, wait_until
from pipelines.models import Event, Pipeline
from pipelines.services import Creator, create_pipeline, set_secret, start_event
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.outputs import read_chunks
from screwdriver_site.tokens import issue_build_token
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BIG_BYTES = 52_428_800
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"

JOB = """
jobs:
  main:
    image: alpine
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    environment:
      SD_ZIP_ARTIFACTS: "%(zip)s"
      GREETING: hello
    steps:
      - make: |
          cd "$SD_ARTIFACTS_DIR"
          echo "plain text" > notes.txt
          printf '<html><body><h1>Report</h1></body></html>' > report.html
          printf '\\211PNG\\r\\n\\032\\n\\000\\000\\000\\rIHDR\\000\\000\\000\\001' > pixel.png
          mkdir -p nested/deeper
          echo deep > nested/deeper/file.txt
          head -c %(big)d /dev/urandom > big.bin
          meta set big.sha256 "$(sha256sum big.bin | cut -c1-64)"
          ln -s /etc/passwd passwd-link
          ln -s "$SD_ROOT_DIR/.launcher" private-link
      - teardown-more: echo "from teardown" > "$SD_ARTIFACTS_DIR/teardown.txt"
"""


@pytest.fixture
def live(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Any, outputs_folder: Path
) -> Iterator[LiveStack]:
    """daphne and a worker on the test database, storing outputs where this test reads: the
    test's folder, or (with the parameter "s3") a bucket on an S3-compatible server."""
    storage = {"SD_STORAGE_URL": f"file://{outputs_folder}"}
    if getattr(request, "param", "folder") == "s3":
        storage = {
            "SD_STORAGE_URL": request.getfixturevalue("s3_outputs"),
            "SD_STORAGE_ACCESS_KEY": "testing",
            "SD_STORAGE_SECRET_KEY": "testing",
        }
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={
            "SD_BUILD_LEASE_SECONDS": "30",
            "SD_LOCAL_REPO_ROOTS": ",".join(settings.SD_LOCAL_REPO_ROOTS),
            **storage,
        },
    )
    settings.SD_API_URL = stack.url
    settings.SD_UI_URL = stack.url
    yield stack
    stack.stop()


def peak_memory_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def _event_done(pipeline: Pipeline) -> Event | None:
    event = Event.objects.filter(pipeline=pipeline).order_by("-id").first()
    if event is None:
        return None
    event.refresh_from_db()
    active = Build.objects.filter(event=event, status__in=["QUEUED", "RUNNING", "CREATED"]).exists()
    return event if not active and event.status != Event.Status.IN_PROGRESS else None


def _stored(build: Build) -> dict[str, bytes]:
    return {a.path: b"".join(read_chunks(a.storage_name)) for a in artifacts_of(build)}


@pytest.mark.parametrize(
    ("live", "zipped"),
    [("folder", False), ("folder", True), ("s3", False)],
    ids=["one-put-per-file", "SD_ZIP_ARTIFACTS", "S3"],
    indirect=["live"],
)
def test_a_build_publishes_its_artifacts_byte_for_byte_without_following_links(
    live: LiveStack, make_repo: Any, zipped: bool
) -> None:
    repo: GitRepo = make_repo(
        {"screwdriver.yaml": JOB % {"zip": str(zipped).lower(), "big": BIG_BYTES}}
    )
    owner = User.objects.create_user(username="alice", password="pw-alice-123")
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=owner)
    set_secret(pipeline=pipeline, name="DEPLOY_KEY", value="s3cr3t-value")
    server = live.server
    assert server is not None
    # The server has answered requests (status, the pipeline's creation): its baseline.
    before = peak_memory_kib(server.pid)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
    wait_until(lambda: _event_done(pipeline), timeout=180, what="the build to finish")
    grown_mib = (peak_memory_kib(server.pid) - before) / 1024

    build = Build.objects.get(event=event)
    publishing = step_log(build, "sd-teardown-artifacts")
    assert build.status == BuildStatus.SUCCESS, publishing
    stored = _stored(build)
    assert stored["notes.txt"] == b"plain text\n"
    assert stored["report.html"] == b"<html><body><h1>Report</h1></body></html>"
    assert stored["pixel.png"] == PNG
    assert stored["nested/deeper/file.txt"] == b"deep\n"
    assert stored["teardown.txt"] == b"from teardown\n"
    big = next(a for a in artifacts_of(build) if a.path == "big.bin")
    assert big.size == BIG_BYTES
    assert big.sha256 == build.meta["big"]["sha256"]
    assert hashlib.sha256(stored["big.bin"]).hexdigest() == build.meta["big"]["sha256"]
    html = next(a for a in artifacts_of(build) if a.path == "report.html")
    assert html.content_type == "text/html"

    # The links were skipped, never read; the log says so.
    assert not {"passwd-link", "private-link"} & set(stored)
    assert not any(path.startswith("private-link/") for path in stored)
    assert "passwd-link: skipped: a symbolic link is never followed." in publishing
    assert "private-link: skipped: a symbolic link is never followed." in publishing
    how = " in one zip" if zipped else ""
    assert publishing[-1] == f"Published 9 files, {_size(stored)}{how}.", publishing

    # Screwdriver's reports, written by the launcher before it uploaded.
    steps = json.loads(stored["steps.json"])
    assert [(s["name"], s["code"]) for s in steps] == [
        ("sd-setup-scm", 0),
        ("make", 0),
        ("teardown-more", 0),
        ("sd-teardown-artifacts", None),
    ]
    assert steps[1]["command"].startswith('cd "$SD_ARTIFACTS_DIR"')
    environment = {
        k: v for entry in json.loads(stored["environment.json"]) for k, v in entry.items()
    }
    assert environment["DEPLOY_KEY"] == "****" and environment["SD_TOKEN"] == "****"
    assert environment["SD_BUILD_ID"] == str(build.pk) and environment["GREETING"] == "hello"
    assert b"s3cr3t-value" not in stored["environment.json"]
    assert stored["manifest.txt"].decode().splitlines() == sorted(f"./{p}" for p in stored)
    step = Step.objects.get(build=build, name="sd-teardown-artifacts")
    assert step.code == 0 and step.start_time and step.end_time

    # 50 MB went through the server; its peak memory did not follow. (With S3 the first
    # upload also loads the S3 client; the test below compares uploads of two sizes there.)
    if live.env["SD_STORAGE_URL"].startswith("file://"):
        assert grown_mib < 30, f"the server's peak memory grew by {grown_mib:.0f} MiB"

    # And it comes back out of the server byte for byte, as a person downloads it.
    token = issue_user_token(username="alice", is_admin=False)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
    conn.request(
        "GET",
        f"/v4/builds/{build.pk}/artifacts/big.bin?type=download",
        headers={"Authorization": f"Bearer {token}"},
    )
    answer = conn.getresponse()
    digest = hashlib.sha256()
    while chunk := answer.read(1 << 20):
        digest.update(chunk)
    conn.close()
    assert answer.status == 200
    assert digest.hexdigest() == build.meta["big"]["sha256"]

    # A range deep inside the large file is those bytes alone, from either storage.
    for first, last in ((30_000_000, 30_000_099), (BIG_BYTES - 7, BIG_BYTES - 1)):
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
        conn.request(
            "GET",
            f"/v4/builds/{build.pk}/artifacts/big.bin",
            headers={"Authorization": f"Bearer {token}", "Range": f"bytes={first}-{last}"},
        )
        answer = conn.getresponse()
        part = answer.read()
        conn.close()
        assert answer.status == 206
        assert answer.getheader("Content-Range") == f"bytes {first}-{last}/{BIG_BYTES}"
        assert part == stored["big.bin"][first : last + 1]


def _size(stored: dict[str, bytes]) -> str:
    from executors.launcher.artifacts import size_text

    return size_text(sum(len(data) for data in stored.values()))


@pytest.mark.parametrize("live", ["folder", "s3"], indirect=True)
def test_the_servers_peak_memory_does_not_grow_with_the_upload(
    live: LiveStack, owner: User
) -> None:
    yaml = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - a: true\n"
    )
    pipeline = pipeline_from_yaml(yaml, owner=owner)
    build = mark_running(build_id=Build.objects.get(event=event_from_yaml(pipeline, yaml)).pk)
    token = issue_build_token(build)
    server = live.server
    assert server is not None

    def upload(name: str, size: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=120)
        block = bytes(range(256)) * 4096
        conn.putrequest("PUT", f"/v4/builds/{build.pk}/artifacts/{name}")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for start in range(0, size, len(block)):
            conn.send(block[: min(len(block), size - start)])
        status = conn.getresponse().status
        conn.close()
        return status

    # The first uploads pay what any upload costs (an S3 client, its parts in flight); a file
    # four times larger must cost nothing more.
    assert upload("warm-up.bin", 5 * 1024 * 1024) == 201
    assert upload("medium.bin", 25 * 1024 * 1024) == 201
    after_medium = peak_memory_kib(server.pid)
    assert upload("large.bin", 100 * 1024 * 1024) == 201
    grown_mib = (peak_memory_kib(server.pid) - after_medium) / 1024
    assert {a.path: a.size for a in artifacts_of(build)} == {
        "warm-up.bin": 5 * 1024 * 1024,
        "medium.bin": 25 * 1024 * 1024,
        "large.bin": 100 * 1024 * 1024,
    }
    assert grown_mib < 10, f"75 MiB more took {grown_mib:.1f} MiB more of the server's memory"
