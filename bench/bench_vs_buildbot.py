"""Benchmark: the same builds on Buildbot 4.3 and on this server, side by side.

Installs Buildbot (buildbot, buildbot-worker and buildbot-www, pinned) from the package index
into a virtualenv of its own under the benchmark's temporary folder, writes a master.cfg with
one LocalWorker and SQLite, and starts it next to this server as `make run` starts it
(`manage.py sd_serve`: daphne, a django-q2 worker, SQLite, the local executor) on a free port
with a data folder of its own. Each build is started through its own system's API (a
ForceScheduler's `force` call; `POST /v4/events`) and polled every 10 ms until it is complete.
The two sides take turns, the first one alternating from run to run, after one warm-up build
of each shape on each side.

Shapes: `ten` (ten steps of `true`), `lines` (one step printing --lines lines; the stored log
is then read back and checked complete and in order), `million` (one step printing --million
lines, once per side, with the peak resident memory of every process of each system), and
`fifty` (--fifty builds of `ten` started at once; builds per minute).

Usage: `make bench-vs-buildbot` or
`python bench/bench_vs_buildbot.py [--runs 7] [--shapes ten,lines,million,fifty]`.
A benchmark, not a test: the results go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_build_latency import free_port, make_repo, running_stack

BUILDBOT_PACKAGES = ["buildbot==4.3.0", "buildbot-worker==4.3.0", "buildbot-www==4.3.0"]
POLL_SECONDS = 0.01
FINISHED = {"SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "COLLAPSED"}
SHAPES = ("ten", "lines", "million", "fifty")


def print_command(lines: int) -> str:
    """A shell command printing `lines` numbered lines: `line 1` to `line N`."""
    return f"seq -f 'line %.0f' 1 {lines}"


def our_config(lines: int, million: int) -> str:
    ten = "\n".join(f"      - s{i}: 'true'" for i in range(10))
    return (
        "shared:\n  image: buildpack-deps\njobs:\n"
        f"  ten:\n    steps:\n{ten}\n"
        # The same job, but its builds run side by side rather than one after the other, all
        # at once rather than Screwdriver's default 5 minutes apart.
        "  fifty:\n    annotations:\n      screwdriver.cd/blockedBySameJob: false\n"
        "      screwdriver.cd/blockedBySameJobWaitTime: 0\n"
        f"      screwdriver.cd/collapseBuilds: false\n    steps:\n{ten}\n"
        f'  lines:\n    steps:\n      - print: "{print_command(lines)}"\n'
        f'  million:\n    steps:\n      - print: "{print_command(million)}"\n'
    )


MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
c["workers"] = [worker.LocalWorker(f"local{{i}}") for i in range({workers})]
c["protocols"] = {{"null": {{}}}}
ten = util.BuildFactory([steps.ShellCommand(name=f"s{{i}}", command="true") for i in range(10)])
c["builders"] = [
    util.BuilderConfig(name="ten", workernames=["local0"], factory=ten),
    # A builder runs one build at a time on each worker: this one has all of them.
    util.BuilderConfig(
        name="fifty", workernames=[w.workername for w in c["workers"]], factory=ten
    ),
    util.BuilderConfig(
        name="lines",
        workernames=["local0"],
        factory=util.BuildFactory([steps.ShellCommand(name="print", command={lines!r})]),
    ),
    util.BuilderConfig(
        name="million",
        workernames=["local0"],
        factory=util.BuildFactory([steps.ShellCommand(name="print", command={million!r})]),
    ),
]
names = ["ten", "fifty", "lines", "million"]
c["schedulers"] = [schedulers.ForceScheduler(name="force", builderNames=names)]
c["www"] = {{"port": "tcp:{port}:interface=127.0.0.1", "plugins": {{}}}}
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
# Every build requested runs, as here: Buildbot merges queued requests of a builder by default.
c["collapseRequests"] = False
c["buildbotNetUsageData"] = None
c["title"] = "bench"
c["buildbotURL"] = "http://127.0.0.1:{port}/"
"""


# -- memory ------------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = row.partition(":")
            out[key] = value.strip()
    return out


def _tree(root: int) -> list[tuple[int, str]]:
    """(pid, command line) of `root` and its descendants."""
    parents: dict[int, int] = {}
    argv: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
        argv[int(entry.name)] = cmd
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in argv:
            found.append((pid, argv[pid]))
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return found


@dataclass
class MemorySampler:
    """Peak resident memory (VmHWM) of each role of a process tree, sampled every 50 ms."""

    root: int
    roles: Callable[[str], str | None]
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> dict[str, int]:
        """Current resident memory (KiB) of each role (the largest process of it)."""
        now: dict[str, int] = {}
        for pid, cmd in _tree(self.root):
            role = self.roles(cmd)
            if role is None:
                continue
            status = _status(pid)
            hwm = int(status.get("VmHWM", "0 kB").split()[0])
            rss = int(status.get("VmRSS", "0 kB").split()[0])
            self.peaks[role] = max(self.peaks.get(role, 0), hwm)
            now[role] = max(now.get(role, 0), rss)
        return now

    def __enter__(self) -> MemorySampler:
        def loop() -> None:
            while not self._stop.wait(0.05):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.sample()


def our_role(cmd: str) -> str | None:
    if "daphne_server" in cmd:
        return "server (daphne)"
    if "sd_worker" in cmd:
        return "worker (django-q2)"
    if "executors.launcher" in cmd:
        return "launcher"
    return None


def buildbot_role(cmd: str) -> str | None:
    # The master runs the LocalWorker in its own process.
    return "master + LocalWorker" if "buildbot" in cmd else None


# -- the two systems ---------------------------------------------------------------------------


class System(Protocol):
    name: str
    pid: int

    def roles(self, cmd: str) -> str | None: ...

    def start(self, shape: str) -> Any: ...

    def done(self, handle: Any) -> bool: ...

    def log(self, handle: Any) -> Iterator[str]: ...


class Ours:
    name = "here"

    def __init__(self, client: httpx.Client, pipeline_id: int, pid: int) -> None:
        self.client = client
        self.pipeline_id = pipeline_id
        self.pid = pid
        self.roles = our_role

    def start(self, shape: str) -> dict[str, Any]:
        answer = self.client.post(
            "/v4/events", json={"pipelineId": self.pipeline_id, "startFrom": shape}
        )
        answer.raise_for_status()
        return {"event": answer.json()["id"], "build": None}

    def done(self, handle: dict[str, Any]) -> bool:
        if handle["build"] is None:
            builds = self.client.get(f"/v4/events/{handle['event']}/builds").json()
            if not builds:
                return False
            handle["build"] = builds[0]["id"]
        build = self.client.get(f"/v4/builds/{handle['build']}").json()
        if build["status"] not in FINISHED:
            return False
        if build["status"] != "SUCCESS":
            raise RuntimeError(f"build {build['id']} ended {build['status']}")
        return True

    def log(self, handle: dict[str, Any]) -> Iterator[str]:
        url = f"/v4/builds/{handle['build']}/steps/print/logs"
        with self.client.stream("GET", url, params={"type": "download"}) as answer:
            yield from answer.iter_lines()


class Buildbot:
    name = "Buildbot"

    def __init__(self, base: str, pid: int) -> None:
        # Uncompressed: Twisted's gzip does not always decode (a busy machine's runs stopped
        # on it), and this spares Buildbot's master the compression.
        self.client = httpx.Client(
            base_url=base + "/api/v2", timeout=60, headers={"Accept-Encoding": "identity"}
        )
        self.pid = pid
        self.roles = buildbot_role
        builders = self.client.get("/builders").json()["builders"]
        self.builder_ids = {b["name"]: b["builderid"] for b in builders}

    def start(self, shape: str) -> dict[str, Any]:
        body = {
            "jsonrpc": "2.0",
            "method": "force",
            "id": 1,
            "params": {"builderid": self.builder_ids[shape]},
        }
        answer = self.client.post("/forceschedulers/force", json=body)
        answer.raise_for_status()
        (request_id,) = answer.json()["result"][1].values()
        return {"request": request_id}

    def done(self, handle: dict[str, Any]) -> bool:
        try:
            answer = self.client.get(f"/buildrequests/{handle['request']}")
        except httpx.TransportError:
            # On a busy machine its web server sometimes drops or stalls a poll: the next
            # poll asks again (the build is then seen at most one poll later).
            return False
        (request,) = answer.json()["buildrequests"]
        if not request["complete"]:
            return False
        if request["results"] != 0:
            raise RuntimeError(
                f"Buildbot's build request {handle['request']} ended with {request['results']}"
            )
        return True

    def log(self, handle: dict[str, Any]) -> Iterator[str]:
        (build,) = self.client.get("/builds", params={"buildrequestid": handle["request"]}).json()[
            "builds"
        ]
        steps = self.client.get(f"/builds/{build['buildid']}/steps").json()["steps"]
        step = next(s for s in steps if s["name"] == "print")
        (log,) = self.client.get(f"/steps/{step['stepid']}/logs").json()["logs"]
        # Uncompressed: Twisted's gzip of a large log does not always decode.
        raw = f"/logs/{log['logid']}/raw"
        with self.client.stream("GET", raw, headers={"Accept-Encoding": "identity"}) as answer:
            yield from answer.iter_lines()


def build_seconds(system: System, shape: str, poll: float = POLL_SECONDS) -> tuple[float, Any]:
    """Seconds from the API call that starts a build of `shape` to the poll that sees it done."""
    started = time.monotonic()
    handle = system.start(shape)
    while not system.done(handle):
        time.sleep(poll)
    return time.monotonic() - started, handle


def check_log(system: System, handle: Any, count: int) -> None:
    """The stored log holds `line 1` to `line COUNT`, each once, in order, none missing."""
    expected = 1
    for text in system.log(handle):
        if expected <= count and text == f"line {expected}":
            expected += 1
        elif re.fullmatch(r"line \d+", text):
            raise RuntimeError(f"{system.name}: {text!r} where 'line {expected}' was due")
    if expected != count + 1:
        raise RuntimeError(f"{system.name}: the log stops before 'line {expected}' of {count}")


def fifty_at_once(system: System, count: int) -> float:
    """Builds per minute when `count` builds of `ten` are started at once."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        handles = list(pool.map(lambda _: system.start("fifty"), range(count)))
    waiting = list(handles)
    while waiting:
        time.sleep(0.1)
        waiting = [h for h in waiting if not system.done(h)]
    return count / (time.monotonic() - started) * 60


# -- starting Buildbot -------------------------------------------------------------------------


@contextlib.contextmanager
def running_buildbot(tmp: Path, lines: int, million: int, workers: int) -> Iterator[Buildbot]:
    venv = tmp / "buildbot-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"Installing {', '.join(BUILDBOT_PACKAGES)}...", flush=True)
    pip = subprocess.run(
        [
            *(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"),
            *("--disable-pip-version-check", "--only-binary=:all:", *BUILDBOT_PACKAGES),
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode:
        raise RuntimeError(f"Buildbot could not be installed:\n{pip.stdout}{pip.stderr}")
    master = tmp / "buildbot-master"
    buildbot = str(venv / "bin" / "buildbot")
    subprocess.run([buildbot, "create-master", "-r", str(master)], check=True, capture_output=True)
    port = free_port()
    config = MASTER_CFG.format(
        port=port, lines=print_command(lines), million=print_command(million), workers=workers
    )
    (master / "master.cfg").write_text(config)
    with open(master / "console.log", "wb") as console:
        proc = subprocess.Popen(
            [buildbot, "start", "--nodaemon", str(master)],
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                found = httpx.get(base + "/api/v2/workers", timeout=5).json()["workers"]
                if len(found) == workers and all(w["connected_to"] for w in found):
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"Buildbot did not start: see {master / 'console.log'}")
            time.sleep(0.2)
        yield Buildbot(base, proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@contextlib.contextmanager
def running_ours(tmp: Path, lines: int, million: int) -> Iterator[Ours]:
    repo = make_repo(tmp, our_config(lines, million))
    # `make run`'s own settings: no SD_QUEUE_POLL_SECONDS of the latency benchmark's.
    default = {"SD_QUEUE_POLL_SECONDS": os.environ.get("SD_QUEUE_POLL_SECONDS", "")}
    with running_stack(tmp, repo, default) as (client, pipeline_id):
        serve = next(p for p, cmd in _tree(os.getpid()) if "sd_serve" in cmd)
        # As Screwdriver's clients do: the API token buys a JWT, which the polls carry.
        api_token = client.headers["Authorization"].removeprefix("Bearer ")
        answer = client.get("/v4/auth/token", params={"api_token": api_token})
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        yield Ours(client, pipeline_id, serve)


# -- the report --------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="builds of each shape on each side")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--fifty", type=int, default=50)
    parser.add_argument(
        "--buildbot-workers",
        type=int,
        default=4,
        help="LocalWorkers for Buildbot's side of `fifty` (a builder runs one build per worker)",
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"of {', '.join(SHAPES)}")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    if unknown := set(shapes) - set(SHAPES):
        parser.error(f"unknown shapes: {', '.join(sorted(unknown))}")
    timed = [s for s in shapes if s in ("ten", "lines")]
    report: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="sd-bench-buildbot-") as tmp_name,
        running_buildbot(
            Path(tmp_name), args.lines, args.million, args.buildbot_workers
        ) as buildbot,
        running_ours(Path(tmp_name), args.lines, args.million) as ours,
    ):
        systems: list[System] = [buildbot, ours]
        times: dict[tuple[str, str], list[float]] = {}
        for shape in timed:  # warm-up
            for system in systems:
                build_seconds(system, shape)
        for run in range(args.runs):
            for shape in timed:
                for system in systems if run % 2 == 0 else systems[::-1]:
                    seconds, handle = build_seconds(system, shape)
                    times.setdefault((system.name, shape), []).append(seconds)
                    if shape == "lines":
                        check_log(system, handle, args.lines)
            print(f"run {run + 1}/{args.runs} done", flush=True)
        names = {"ten": "ten steps of `true`", "lines": f"one step printing {args.lines:,} lines"}
        if timed:
            report.append("| Build | Buildbot | here | Buildbot / here |")
            report.append("|---|---:|---:|---:|")
        for shape in timed:
            theirs = statistics.median(times[("Buildbot", shape)])
            mine = statistics.median(times[("here", shape)])
            report.append(f"| {names[shape]} | {ms(theirs)} | {ms(mine)} | {theirs / mine:.2f}x |")
        if timed and {"million", "fifty"} & set(shapes):
            # Now, too (and the million-line build's below): a later shape that fails must
            # not lose them.
            print("\n".join(report), flush=True)
        printed = len(report)
        if "million" in shapes:
            report.append("")
            report.append(f"One step printing {args.million:,} lines, once each:")
            for system in systems:
                sampler = MemorySampler(system.pid, system.roles)
                before = sampler.sample()
                with sampler:
                    seconds, handle = build_seconds(system, "million", poll=0.1)
                after = sampler.sample()
                check_log(system, handle, args.million)
                report.append(f"  {system.name}: {ms(seconds)}, log complete and in order")
                for role, peak in sorted(sampler.peaks.items()):
                    report.append(
                        f"    {role}: peak {peak / 1024:.0f} MiB"
                        + (
                            f" (resident before {before[role] / 1024:.0f} MiB, "
                            f"after {after[role] / 1024:.0f} MiB)"
                            if role in before and role in after
                            else ""
                        )
                    )
            print("\n".join(report[printed:]), flush=True)
        if "fifty" in shapes:
            report.append("")
            report.append(
                f"{args.fifty} builds of `ten` started at once "
                f"(Buildbot: {args.buildbot_workers} LocalWorkers):"
            )
            rates = {system.name: fifty_at_once(system, args.fifty) for system in systems}
            for name, rate in rates.items():
                report.append(f"  {name}: {rate:.1f} builds/min")
            report.append(f"  here / Buildbot: {rates['here'] / rates['Buildbot']:.2f}x")
    print(f"\nMedians of {args.runs} (POST to the poll that sees the build done, 10 ms polls):")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
