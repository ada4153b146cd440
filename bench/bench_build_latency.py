"""Benchmark: POST /v4/events to the first step's first log line, and a 10-step job's overhead.

Runs the real stack on the embedded default (daphne + a django-q2 worker + SQLite in a
temporary data dir) and a real local git repository. Usage: `make bench` (or
`python bench/bench_build_latency.py --runs 20`). Results go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GIT = [
    "git",
    "-c",
    "user.name=Bench",
    "-c",
    "user.email=bench@localhost",
    "-c",
    "init.defaultBranch=main",
]
CONFIG_HEAD = """
shared:
  image: buildpack-deps
jobs:
  first:
    requires: [~commit]
    steps:
      - hello: echo first-line
  ten:
    steps:
"""
CONFIG = CONFIG_HEAD + "\n".join(f"      - s{i}: 'true'" for i in range(10)) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def make_repo(tmp: Path, config: str = CONFIG) -> Path:
    """A bare repository whose one commit holds `config` as screwdriver.yaml."""
    bare = tmp / "bench.git"
    subprocess.run([*GIT, "init", "-q", "--bare", str(bare)], check=True)
    work = tmp / "work"
    subprocess.run([*GIT, "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    (work / "screwdriver.yaml").write_text(config)
    subprocess.run([*GIT, "add", "."], cwd=work, check=True)
    subprocess.run([*GIT, "commit", "-qm", "bench"], cwd=work, check=True)
    subprocess.run(
        [*GIT, "push", "-q", "origin", "HEAD:main"], cwd=work, check=True, capture_output=True
    )
    return bare


def wait_for_build(client: httpx.Client, event_id: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builds = client.get(f"/v4/events/{event_id}/builds").json()
        if builds:
            return builds[0]
        time.sleep(0.005)
    raise RuntimeError("no build appeared")


def first_line_latency(client: httpx.Client, pipeline_id: int) -> tuple[float, float]:
    """Seconds from sending POST /v4/events to the first log line (launcher clock, client view)."""
    sent = time.time()
    event = client.post("/v4/events", json={"pipelineId": pipeline_id, "startFrom": "first"}).json()
    build = wait_for_build(client, event["id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = client.get(f"/v4/builds/{build['id']}/steps/hello/logs").json()
        if lines:
            seen = time.time()
            return lines[0]["t"] / 1000 - sent, seen - sent
        time.sleep(0.005)
    raise RuntimeError("no log line appeared")


def ten_step_overhead(client: httpx.Client, pipeline_id: int) -> tuple[float, float]:
    """(build start to end, POST to build end) of a job of ten `true` steps."""
    sent = time.time()
    event = client.post("/v4/events", json={"pipelineId": pipeline_id, "startFrom": "ten"}).json()
    build = wait_for_build(client, event["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        build = client.get(f"/v4/builds/{build['id']}").json()
        if build["status"] in {"SUCCESS", "FAILURE", "ABORTED"}:
            assert build["status"] == "SUCCESS", build
            return iso(build["endTime"]) - iso(build["startTime"]), iso(build["endTime"]) - sent
        time.sleep(0.01)
    raise RuntimeError("the ten-step build did not finish")


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    median = statistics.median(values) * 1000
    return (
        f"{name}: median {median:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"min {values[0] * 1000:.0f} ms, n={len(values)}"
    )


@contextlib.contextmanager
def running_stack(
    tmp: Path, repo: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[httpx.Client, int]]:
    """`make run`'s stack on a fresh data dir in `tmp`: an API client and a pipeline of `repo`."""
    port = free_port()
    env = {
        **os.environ,
        "SD_DATA_DIR": str(tmp / "data"),
        "PORT": str(port),
        "SD_LOG_LEVEL": "WARNING",
        "SD_QUEUE_POLL_SECONDS": "0.05",
        **(extra_env or {}),
    }
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run(
        [*manage, "sd_token", "create", "--username", "bench", "--admin"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    serve = subprocess.Popen(
        [*manage, "sd_serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        # As long as the Buildbot side waits for its master: a busy machine starts slowly.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if client.get("/v4/status").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        pipeline = client.post("/v4/pipelines", json={"checkoutUrl": f"{repo}#main"}).json()
        yield client, int(pipeline["id"])
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with running_stack(tmp, make_repo(tmp)) as (client, pipeline_id):
            first_line_latency(client, pipeline_id)  # warm-up
            launcher_view, client_view = zip(
                *(first_line_latency(client, pipeline_id) for _ in range(args.runs)), strict=True
            )
            in_build, end_to_end = zip(
                *(ten_step_overhead(client, pipeline_id) for _ in range(args.runs)), strict=True
            )
    print(summary("POST /v4/events -> first log line (launcher clock)", list(launcher_view)))
    print(summary("POST /v4/events -> first log line seen by a polling client", list(client_view)))
    print(
        summary(
            "10 trivial steps: build start -> end (launcher overhead incl. checkout)",
            list(in_build),
        )
    )
    print(summary("10 trivial steps: POST /v4/events -> build end", list(end_to_end)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
