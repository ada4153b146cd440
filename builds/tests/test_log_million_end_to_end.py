"""A step printing a million lines: its log stored whole, in order, masked, capped and resent
safely, while the server's memory stays flat."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.logs import read_page
from builds.models import FINISHED_STATUSES, Build, BuildStatus, LogBatch, Step
from conftest import GitRepo, Stack, wait_until
from executors.tests.outage_proxy import OutageProxy
from pipelines.services import Creator, create_pipeline, set_secret, start_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LINES = 1_000_000
SECRET = "m1ll10n-l1nes-s3cret"
# Every line but the ones showing the secret: 51 bytes with its newline, about 50 MB in all,
# so a server that held the log would show it in its memory.
TEXT = "%06d the million-line step says hello, line by line"
# The flood, then a step that passes the build's cap part way through.
YAML = f"""
jobs:
  main:
    image: alpine
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    steps:
      - flood: |
          awk -v s="$DEPLOY_KEY" 'BEGIN {{
            for (i = 0; i < {LINES}; i++)
              if (i % 100000 == 0) print i, "key", s; else printf "{TEXT}\\n", i }}'
      - capped: seq 0 999999
"""
# The build's log may hold the flood and a megabyte more: the cap cuts `capped` in a batch.
FLOOD_BYTES = sum(
    len(f"{i} key ****") + 1 if i % 100_000 == 0 else len(TEXT % i) + 1 for i in range(LINES)
)
BUILD_CAP = FLOOD_BYTES + 1_000_000
# What the server may grow by while it stores the log: a few batches of 1 MiB at a time, not
# the 50 MB log (nor its million lines as objects).
SERVER_GROWTH_LIMIT = 32 * 1024 * 1024
# The launcher holds at most a few megabytes of log waiting to be sent.
LAUNCHER_LIMIT = 128 * 1024 * 1024


def expected_flood(i: int) -> str:
    return f"{i} key ****" if i % 100_000 == 0 else TEXT % i


def _status_kib(pid: int | str, field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(found.group(1)) if found else 0


class PeakMemory:
    """The peak resident memory of the worker and of the build's launcher (a fork of the
    worker's launcher fork server, detached from it), sampled while the build runs."""

    def __init__(self, stack: Stack) -> None:
        assert stack.worker is not None
        self.worker_pid = stack.worker.pid
        self.data_dir = stack.data_dir
        self.worker = 0
        self.launcher = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.worker = max(self.worker, self._peak(self.worker_pid))
            # Beside the workspaces, not in them: a walk would race their removal.
            for pid_file in self.data_dir.glob("workspaces/*.launcher.pid"):
                try:
                    pid = int(pid_file.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                self.launcher = max(self.launcher, self._peak(pid))

    @staticmethod
    def _peak(pid: int) -> int:
        try:
            return _status_kib(pid, "VmHWM")
        except OSError:
            return 0


@pytest.fixture
def proxied(stack: Stack, settings: Any) -> Iterator[tuple[Stack, OutageProxy]]:
    """The stack with the build cap above, reached by builds through a proxy the test can cut."""
    settings.SD_LOG_MAX_BUILD_BYTES = BUILD_CAP
    proxy = OutageProxy(urlsplit(stack.url).port or 80)
    stack.stop_worker()
    stack.env["SD_API_URL"] = proxy.url
    stack.start_worker()
    yield stack, proxy
    proxy.close()


def test_a_million_lines_are_stored_whole_in_order_masked_capped_and_resent_safely_in_flat_memory(
    proxied: tuple[Stack, OutageProxy], make_repo: Callable[..., GitRepo]
) -> None:
    stack, proxy = proxied
    assert stack.worker is not None
    user = User.objects.create_user(username="alice", password="pw-alice-123")
    pipeline = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": YAML}).checkout_url, user=user
    )
    set_secret(pipeline=pipeline, name="DEPLOY_KEY", value=SECRET)
    Path("/proc/self/clear_refs").write_text("5")  # the server's peak starts from here
    server_before = _status_kib("self", "VmRSS")
    started = time.monotonic()
    with PeakMemory(stack) as peaks:
        event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("a", "alice"))
        build = Build.objects.get(event=event)
        # Cut the launcher off while the flood is being stored: the batch on the wire is resent
        # (the server may already have stored it) and the rest wait in order.
        wait_until(
            lambda: LogBatch.objects.filter(step__build=build, step__name="flood").exists(),
            timeout=60,
            what="the flood's first batch",
        )
        proxy.down()
        time.sleep(1.5)
        proxy.up()
        build = wait_until(
            lambda: Build.objects.filter(pk=build.pk, status__in=FINISHED_STATUSES).first(),
            timeout=300,
            what="the million lines to be stored",
        )
    took = time.monotonic() - started
    server_peak = _status_kib("self", "VmHWM")
    print(
        f"\n{LINES} lines in {took:.1f} s; server (this process) {server_before // 1024} MiB "
        f"before, peak {server_peak // 1024} MiB; peaks of the worker "
        f"{peaks.worker // 1024} MiB and the launcher {peaks.launcher // 1024} MiB"
    )
    assert build.status == BuildStatus.SUCCESS, build.status_message
    launcher_log = (stack.data_dir / "workspaces" / f"build-{build.pk}.launcher.log").read_text()
    assert "resending log batch" in launcher_log
    assert server_peak - server_before < SERVER_GROWTH_LIMIT // 1024
    assert 0 < peaks.launcher < LAUNCHER_LIMIT // 1024

    flood = Step.objects.get(build=build, name="flood")
    assert flood.lines == LINES and not flood.log_truncated
    seqs = list(
        LogBatch.objects.filter(step=flood).order_by("seq").values_list("seq", "first_line")
    )
    assert [seq for seq, _ in seqs] == list(range(len(seqs)))
    client = APIClient()
    client.force_authenticate(user)
    download: Any = client.get(f"/v4/builds/{build.pk}/steps/flood/logs", {"type": "download"})
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode()
    assert SECRET not in text
    assert text == "".join(f"{expected_flood(i)}\n" for i in range(LINES))
    page = client.get(f"/v4/builds/{build.pk}/steps/flood/logs", {"from": LINES - 10}).json()
    assert [(line["n"], line["m"]) for line in page] == [
        (i, expected_flood(i)) for i in range(LINES - 10, LINES)
    ]

    capped = Step.objects.get(build=build, name="capped")
    assert capped.log_truncated
    lines = [line["m"] for line in read_page(step=capped, pages=100).lines]
    last = read_page(step=capped, start=capped.lines - 1).lines[0]["m"]
    assert last == f"[log truncated: this build wrote more than {BUILD_CAP} bytes]"
    assert lines[:1000] == [str(i) for i in range(1000)]
    shown = [line["m"] for line in read_page(step=capped, start=capped.lines - 3, pages=1).lines]
    kept = int(shown[-2])
    assert shown[:2] == [str(kept - 1), str(kept)] and capped.lines == kept + 2
