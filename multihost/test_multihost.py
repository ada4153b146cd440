"""One API host, three worker hosts, a fan-out / fan-in pipeline, and a host that dies.

Every host is a network namespace (multihost/hosts.py); the API host runs the ASGI server,
each worker host `manage.py sd_worker` with the local executor and a data folder of its own.
Several pipelines (repositories on disk) run `start -> p1..p8 -> join`; each pipeline has one
event in flight at a time, and a new one starts when its last one has ended.

The tests run in this order: builds per minute with one, two and three worker hosts; a live
log from a worker host in Chromium connected to the API host; then a longer run in which one
worker host loses all its processes (SIGKILL) in the middle of a wave.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from multihost.conftest import (
    ACTIVE,
    FINISHED,
    LEASE_SECONDS,
    REAPER_MINUTES,
    Cluster,
    make_repo,
    wait_for,
)

PARALLEL = [f"p{i}" for i in range(1, 9)]
JOBS = ["start", *PARALLEL, "join"]
LINES = 30
PIPELINES = int(os.environ.get("SD_MULTIHOST_PIPELINES", "4"))
# Events per pipeline: each throughput run, and the run in which a host dies.
RATE_EVENTS = int(os.environ.get("SD_MULTIHOST_RATE_EVENTS", "1"))
KILL_EVENTS = int(os.environ.get("SD_MULTIHOST_KILL_EVENTS", "3"))
# The reaper runs every REAPER_MINUTES; django-q2's scheduler looks at its schedules every
# 30 s, so a schedule due just after a look waits for the next.
SCHEDULER_BEAT = 30
LOST_WITHIN = LEASE_SECONDS + REAPER_MINUTES * 60 + SCHEDULER_BEAT + 15


def step(job: str) -> str:
    # Numbered lines with a pause halfway, so that a build is running when a host dies.
    return (
        f'for i in $(seq 1 {LINES}); do echo "{job} line $i"; '
        f"if [ $i -eq {LINES // 2} ]; then sleep 1; fi; done"
    )


def fan_yaml() -> str:
    lines = ["jobs:"]
    for job in JOBS:
        parents = ["~commit"] if job == "start" else PARALLEL if job == "join" else ["start"]
        lines += [
            f"  {job}:",
            "    image: buildpack-deps",
            "    annotations:",
            # A build lost with its host runs again on another.
            "      screwdriver.cd/retries: 1",
            f"    requires: [{', '.join(parents)}]",
            "    steps:",
            f"      - count: '{step(job)}'",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    """The events of one run, and how long they took."""

    events: list[int] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_minute(self) -> float:
        return len(self.builds) / self.seconds * 60


@pytest.fixture(scope="session")
def pipelines(cluster: Cluster) -> list[int]:
    ids = []
    with cluster.api() as api:
        for index in range(PIPELINES):
            bare = make_repo(cluster.root, f"fan{index}", fan_yaml())
            created = api.post("/pipelines", json={"checkoutUrl": f"{bare}#main"})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
    return ids


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    """GET PATH's JSON, waiting out an answer of 5xx or none: on one machine shared by every
    host (and a PostgreSQL shared with other work) the API may briefly run out of database
    connections; the launchers retry then, and so does the test's reading."""
    for _ in range(10):
        try:
            answer = api.get(path, params=params)
        except httpx.TransportError:
            time.sleep(1)
            continue
        if answer.status_code < 500:
            assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
            return answer
        time.sleep(1)
    raise AssertionError(f"GET {path} kept failing")


def event_done(builds: list[dict[str, Any]]) -> bool:
    """Nothing of the event runs or waits any more (a join whose parent failed never will)."""
    if not builds:
        return False
    if all(b["status"] in FINISHED for b in builds):
        return True
    return not any(b["status"] in ACTIVE for b in builds) and any(
        b["status"] == "FAILURE" for b in builds
    )


def run_events(
    cluster: Cluster,
    pipelines: list[int],
    per_pipeline: int,
    *,
    timeout: float,
    tick: Callable[[int], None] | None = None,
) -> Run:
    """Start PER_PIPELINE events on each pipeline, one in flight per pipeline; wait for all."""
    run = Run()
    todo = dict.fromkeys(pipelines, per_pipeline)
    flying: dict[int, int] = {}
    done_builds: dict[int, list[dict[str, Any]]] = {}
    started = time.monotonic()
    with cluster.api() as api:
        while any(todo.values()) or flying:
            for pipeline in pipelines:
                if pipeline not in flying and todo[pipeline]:
                    answer = api.post(
                        "/events", json={"pipelineId": pipeline, "startFrom": "~commit"}
                    )
                    assert answer.status_code == 201, answer.text
                    flying[pipeline] = answer.json()["id"]
                    run.events.append(flying[pipeline])
                    todo[pipeline] -= 1
            time.sleep(0.5)
            for pipeline, event in list(flying.items()):
                builds = get(api, f"/events/{event}/builds").json()
                if event_done(builds):
                    done_builds[event] = builds
                    del flying[pipeline]
            if tick is not None:
                tick(sum(len(b) for b in done_builds.values()))
            assert time.monotonic() - started < timeout, (
                f"events {sorted(flying.values())} still running after {timeout:g} s"
            )
    run.seconds = time.monotonic() - started
    run.builds = [b for event in run.events for b in done_builds[event]]
    return run


def log_of(cluster: Cluster, build_id: int, step_name: str) -> list[str]:
    lines: list[str] = []
    with cluster.api() as api:
        while True:
            page = get(api, f"/builds/{build_id}/steps/{step_name}/logs", **{"from": len(lines)})
            lines += [line["m"] for line in page.json()]
            if page.headers.get("X-More-Data") != "true" or not page.json():
                return lines


JOB_NAMES: dict[int, str] = {}


def job_name(cluster: Cluster, job_id: int) -> str:
    if job_id not in JOB_NAMES:
        with cluster.api() as api:
            JOB_NAMES[job_id] = get(api, f"/jobs/{job_id}").json()["name"]
    return JOB_NAMES[job_id]


def assert_every_event_ran_once(cluster: Cluster, run: Run) -> None:
    """Each event ran each job once (so its join exactly once), all ended SUCCESS, and each
    build's log holds its numbered lines, each once, in order."""
    by_event: dict[int, list[dict[str, Any]]] = {}
    for build in run.builds:
        by_event.setdefault(build["eventId"], []).append(build)
    assert sorted(by_event) == sorted(run.events)
    problems = []
    for event, builds in by_event.items():
        jobs = sorted(job_name(cluster, b["jobId"]) for b in builds)
        if jobs != sorted(JOBS):
            problems.append(f"event {event} ran {jobs}")
        for build in builds:
            if build["status"] != "SUCCESS":
                problems.append(
                    f"build {build['id']} of event {event}: {build['status']} "
                    f"({build.get('statusMessage')})"
                )
    assert not problems, "\n".join(problems)


def assert_logs_whole(cluster: Cluster, run: Run) -> None:
    problems = []
    for build in run.builds:
        job = job_name(cluster, build["jobId"])
        lines = log_of(cluster, build["id"], "count")
        expected = [f"{job} line {i}" for i in range(1, LINES + 1)]
        if lines != expected:
            problems.append(f"build {build['id']} ({job}): {len(lines)} lines, {lines[:3]}...")
    assert not problems, "\n".join(problems)


def test_builds_per_minute_with_one_two_and_three_worker_hosts(
    cluster: Cluster, pipelines: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    rates = []
    for count in (1, 2, 3):
        cluster.start_workers(count)
        run = run_events(cluster, pipelines, RATE_EVENTS, timeout=600)
        assert_every_event_ran_once(cluster, run)
        assert_logs_whole(cluster, run)
        hosts_used = set(cluster.ran_on([b["id"] for b in run.builds]).values())
        assert len(hosts_used) == count, f"{count} worker hosts, builds ran on {hosts_used}"
        rates.append(
            f"{count} worker host{'s' if count > 1 else ''}: {len(run.builds)} builds in "
            f"{run.seconds:.1f} s = {run.per_minute:.0f} builds/minute"
        )
    with capsys.disabled():
        print("\nmulti-host builds per minute (one machine, 2 cores shared by every host):")
        for line in rates:
            print("  " + line)
    cluster.report += rates


WATCHED = """
jobs:
  watched:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - ticks: 'sleep 2; for i in $(seq 1 60); do echo "live line $i"; sleep 0.25; done'
"""
CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="install Debian's chromium")
def test_a_live_log_from_a_worker_host_reaches_a_browser_on_the_api_host(
    cluster: Cluster,
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    cluster.start_workers(3)
    password = "a long password for the watcher"  # noqa: S105 (a throwaway account)
    cluster.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('watcher', password='{password}')",
    )
    bare = make_repo(cluster.root, "watched", WATCHED)
    with cluster.api() as api:
        pipeline = api.post("/pipelines", json={"checkoutUrl": f"{bare}#main"}).json()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page(base_url=cluster.url)
            page.set_default_timeout(30_000)
            page.goto("/login/")
            page.get_by_label("Username").fill("watcher")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/pipelines")
            with cluster.api() as api:
                event = api.post(
                    "/events", json={"pipelineId": pipeline["id"], "startFrom": "~commit"}
                ).json()
                (build,) = wait_for(
                    lambda: get(api, f"/events/{event['id']}/builds").json(),
                    timeout=30,
                    what="the watched build",
                )
            page.goto(f"/pipelines/{pipeline['id']}/builds/{build['id']}")
            page.locator("#steps .line", has_text="live line 5").first.wait_for(timeout=90_000)
            with cluster.api() as api:
                status = get(api, f"/builds/{build['id']}").json()["status"]
            printed = log_of(cluster, build["id"], "ticks")
        finally:
            browser.close()
    # Seen while the build still ran: the line came live, not from a finished log.
    assert status == "RUNNING", status
    assert len(printed) < 60, "the build had already printed everything"
    host = cluster.ran_on([build["id"]]).get(build["id"])
    assert host in {"w1", "w2", "w3"}, host
    cluster.report.append(
        f"live log: build {build['id']} on worker host {host}, line 5 shown in Chromium "
        f"on the API host while the build ran ({len(printed)} of 60 lines printed)"
    )


def test_a_worker_host_killed_mid_wave_loses_no_build_no_join_and_no_line(
    cluster: Cluster, pipelines: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.start_workers(3)
    victim = cluster.workers[1]
    total = PIPELINES * KILL_EVENTS * len(JOBS)
    lost: dict[int, float | None] = {}
    killed_at = 0.0

    def tick(finished: int) -> None:
        nonlocal killed_at
        if not killed_at:
            running_there = victim.launcher_builds()
            # In the middle of the wave: some builds done, several running on the victim.
            if finished >= total // 3 and len(running_there) >= 3:
                victim.power_off()
                killed_at = time.monotonic()
                rows = cluster.db.execute(
                    "SELECT id FROM builds_build WHERE id = ANY(%s) AND status = 'RUNNING'",
                    [sorted(running_there)],
                ).fetchall()
                lost.update({row[0]: None for row in rows})
            return
        waiting = [build_id for build_id, seen in lost.items() if seen is None]
        if waiting:
            rows = cluster.db.execute(
                "SELECT id FROM builds_build WHERE id = ANY(%s) "
                "AND (infra_retries > 0 OR status <> 'RUNNING')",
                [waiting],
            ).fetchall()
            for (build_id,) in rows:
                lost[build_id] = time.monotonic() - killed_at

    run = run_events(cluster, pipelines, KILL_EVENTS, timeout=900, tick=tick)
    assert killed_at, "the victim never ran three builds at once: nothing was killed"
    assert lost, "no build was running on the victim when it died"
    # Every build ended (run_events waited for it); the lost ones ran again elsewhere.
    assert_every_event_ran_once(cluster, run)
    assert_logs_whole(cluster, run)
    slow = {b: s for b, s in lost.items() if s is None or s > LOST_WITHIN}
    assert not slow, f"lost builds not taken back within {LOST_WITHIN} s: {slow}"
    # A build whose last report was on its way when the host died ended on its own; every
    # other one was queued again (its job allows one retry) and ran on a surviving host.
    retried = [
        row[0]
        for row in cluster.db.execute(
            "SELECT id FROM builds_build WHERE id = ANY(%s) AND infra_retries = 1",
            [sorted(lost)],
        ).fetchall()
    ]
    assert retried, f"none of the lost builds {sorted(lost)} was queued again"
    where = cluster.ran_on(retried)
    assert sorted(where) == sorted(retried)
    assert victim.name not in where.values()
    seconds = [s for b, s in lost.items() if s is not None and b in retried]
    cluster.report.append(
        f"host {victim.name} killed with {len(lost)} builds running: {len(retried)} lost, each "
        f"queued again within {max(seconds):.0f} s (bound {LOST_WITHIN} s), ended SUCCESS on "
        f"{', '.join(sorted(set(where.values())))}; {len(run.builds)} builds in "
        f"{run.seconds:.0f} s, every join once"
    )
    with capsys.disabled():
        print("\nmulti-host report:")
        for line in cluster.report:
            print("  " + line)
