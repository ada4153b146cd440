"""Benchmark: a trivial job on the Docker executor against `docker run` of the same command.

Runs the real stack (daphne + a django-q2 worker + SQLite in a temporary data dir) and a local
`FROM scratch` busybox image (never pulled). Usage: `python bench/bench_docker.py --runs 10`
with a Docker engine running. Results go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx
from bench_build_latency import iso, make_repo, running_stack, wait_for_build

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.busybox_image import build_busybox_image  # noqa: E402

IMAGE = "sd-bench-busybox:1"
COMMAND = "echo hello from the container"
CONFIG = f"""
jobs:
  main:
    image: {IMAGE}
    requires: [~commit]
    annotations:
      screwdriver.cd/executor: docker
    steps:
      - hello: {COMMAND}
"""


def one_build(client: httpx.Client, pipeline_id: int) -> tuple[float, float]:
    """(POST /v4/events -> build end, build start -> end) of the trivial container job."""
    sent = time.time()
    event = client.post("/v4/events", json={"pipelineId": pipeline_id, "startFrom": "main"}).json()
    build = wait_for_build(client, event["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        build = client.get(f"/v4/builds/{build['id']}").json()
        if build["status"] in {"SUCCESS", "FAILURE", "ABORTED"}:
            assert build["status"] == "SUCCESS", build
            end = iso(build["endTime"])
            return end - sent, end - iso(build["startTime"])
        time.sleep(0.01)
    raise RuntimeError("the container build did not finish")


def docker_run(engine: docker.DockerClient) -> float:
    """Wall time of `docker run --rm IMAGE sh -c COMMAND`."""
    started = time.perf_counter()
    engine.containers.run(IMAGE, ["/bin/sh", "-c", COMMAND], remove=True)
    return time.perf_counter() - started


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    engine = docker.from_env()
    build_busybox_image(engine, IMAGE)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = running_stack(
            tmp, make_repo(tmp, CONFIG), {"SD_INSTANCE": "sd-bench", "SD_EXECUTORS": "docker"}
        )
        with stack as (client, pipeline_id):
            one_build(client, pipeline_id)  # warm-up
            builds = [one_build(client, pipeline_id) for _ in range(args.runs)]
            runs = [docker_run(engine) for _ in range(args.runs)]
    end_to_end = [b[0] for b in builds]
    in_build = [b[1] for b in builds]
    extra = statistics.median(end_to_end) - statistics.median(runs)
    print(f"docker run --rm {IMAGE} sh -c '{COMMAND}': {ms(runs)}")
    print(f"the same as a job, POST /v4/events -> build end: {ms(end_to_end)}")
    print(f"the same as a job, build start -> end (launcher, container, checkout): {ms(in_build)}")
    print(f"a job costs {extra * 1000:.0f} ms more than docker run (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
