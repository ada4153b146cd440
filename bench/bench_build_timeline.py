"""Profile: where the time of one build goes, from `POST /v4/events` to the poll that sees it.

Runs `make run`'s stack (as bench_vs_buildbot.py does) with the same jobs and, for each build
of a shape, reads back the times the server and the launcher recorded: the build row, RUNNING,
each step's start and end, the last log line's time and the build's end. Prints the median of
each moment (milliseconds after the POST was sent) over the runs, so the phases of a build
(queue, launcher start, sandbox and checkout, the step, its log, the artifacts step, the final
status) can be told apart. Step and server share this machine's clock. For the launcher's own
moments in between, add prints of `time.time()` to its stderr (kept beside each build's
workspace as `build-N.launcher.log`) for the run: they are not kept in the code.

Usage: `python bench/bench_build_timeline.py [--runs 7] [--shapes lines,ten,one]`
(`one` is a step printing one line: the same build as `lines` without the log).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_build_latency import iso, make_repo, running_stack
from bench_vs_buildbot import FINISHED, our_config


def config(lines: int) -> str:
    return our_config(lines, 1000) + '  one:\n    steps:\n      - print: "echo line 1"\n'


def timeline(client: Any, pipeline_id: int, shape: str, lines: int) -> dict[str, float]:
    """Seconds after the POST of each moment of one build of `shape`."""
    sent = time.time()
    answer = client.post("/v4/events", json={"pipelineId": pipeline_id, "startFrom": shape})
    answer.raise_for_status()
    answered = time.time()
    event = answer.json()["id"]
    build_id = None
    while True:
        if build_id is None:
            builds = client.get(f"/v4/events/{event}/builds").json()
            build_id = builds[0]["id"] if builds else None
        if build_id is not None:
            build = client.get(f"/v4/builds/{build_id}").json()
            if build["status"] in FINISHED:
                break
        time.sleep(0.01)
    seen = time.time()
    if build["status"] != "SUCCESS":
        raise RuntimeError(f"build {build_id} ended {build['status']}")
    moments = {
        "POST answered": answered,
        "build row created": iso(build["createTime"]),
        "RUNNING (startTime)": iso(build["startTime"]),
    }
    for step in build["steps"]:
        name = step["name"]
        if step.get("startTime"):
            moments[f"{name} start"] = iso(step["startTime"])
        if step.get("endTime"):
            moments[f"{name} end"] = iso(step["endTime"])
    if shape in ("lines", "one"):
        last = client.get(
            f"/v4/builds/{build_id}/steps/print/logs",
            params={"from": lines - 1 if shape == "lines" else 0, "pages": 1},
        ).json()
        if last:
            moments["last log line printed (t)"] = max(line["t"] for line in last) / 1000
    moments["build end (endTime)"] = iso(build["endTime"])
    moments["the poll sees it"] = seen
    return {name: at - sent for name, at in moments.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--shapes", default="lines,one,ten")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="sd-bench-timeline-") as tmp_name:
        tmp = Path(tmp_name)
        repo = make_repo(tmp, config(args.lines))
        default = {"SD_QUEUE_POLL_SECONDS": os.environ.get("SD_QUEUE_POLL_SECONDS", "")}
        with running_stack(tmp, repo, default) as (client, pipeline_id):
            api_token = client.headers["Authorization"].removeprefix("Bearer ")
            answer = client.get("/v4/auth/token", params={"api_token": api_token})
            client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
            for shape in shapes:  # warm-up
                timeline(client, pipeline_id, shape, args.lines)
            results: dict[str, list[dict[str, float]]] = {s: [] for s in shapes}
            for _run in range(args.runs):
                for shape in shapes:
                    results[shape].append(timeline(client, pipeline_id, shape, args.lines))
    for shape in shapes:
        runs = results[shape]
        print(f"\n{shape}: median (min-max) ms after POST /v4/events was sent, {len(runs)} runs")
        names = list(runs[0])
        order = sorted(names, key=lambda n: statistics.median(r.get(n, 0) for r in runs))
        for name in order:
            values = [r[name] * 1000 for r in runs if name in r]
            print(
                f"  {name:34} {statistics.median(values):7.0f}"
                f"   ({min(values):.0f}-{max(values):.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
