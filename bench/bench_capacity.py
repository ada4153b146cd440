"""Measure what one build costs the database and Redis: the figures behind docs/scaling.md.

Runs the production shape on this machine: PostgreSQL (a fresh database on the server named by
SD_BENCH_POSTGRES_URL, dropped afterwards), a private redis-server on a free port (so no other
client's commands are counted) carrying the task queue and the channel layer, the API and one
worker (`sd_serve`), builds on the local executor. It measures, as deltas of PostgreSQL's own
statistics (pg_stat_database, pg_stat_user_tables, pg_database_size) and Redis's INFO
commandstats, with an idle window of the same length subtracted (the periodic tasks):

- a ten-step build of trivial steps, per build (average of --builds runs);
- one step printing 100,000 lines of 80 bytes, per line: lines alike (which compress about
  70 to 1) and lines of random base64 (which compress about 4 to 3, a worst case);
- builds per minute of one-step builds on this one host (FAN builds of one event, all at once).

Usage: `python bench/bench_capacity.py` (needs PostgreSQL and redis-server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_build_latency import GIT, free_port  # noqa: E402

ADMIN_URL = os.environ.get("SD_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
# One-step jobs that an event from ~commit starts all at once: the throughput figure.
FAN = 30
FAN_JOBS = "\n".join(
    f"  fan{i}:\n    requires: [~commit]\n    steps: [{{hello: echo {i}}}]" for i in range(FAN)
)
LINE = "x" * 72  # with "line NNNNNN " in front: 80 bytes a line before the newline
CONFIG = f"""
shared:
  image: buildpack-deps
jobs:
  one:
    steps:
      - hello: echo one
  ten:
    steps:
{chr(10).join(f"      - s{i}: 'true'" for i in range(10))}
  lines:
    steps:
      - print: seq -f 'line %06g {LINE[:-1]}' 1 100000
  noise:
    steps:
      - print: head -c 6000000 /dev/urandom | base64 -w 80 | head -n 100000
{FAN_JOBS}
"""
TERMINAL = {"SUCCESS", "FAILURE", "ABORTED", "UNSTABLE"}


def make_repo(tmp: Path) -> Path:
    bare = tmp / "capacity.git"
    subprocess.run([*GIT, "init", "-q", "--bare", str(bare)], check=True)
    work = tmp / "work"
    subprocess.run([*GIT, "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    (work / "screwdriver.yaml").write_text(CONFIG)
    subprocess.run([*GIT, "add", "."], cwd=work, check=True)
    subprocess.run([*GIT, "commit", "-qm", "capacity"], cwd=work, check=True)
    subprocess.run([*GIT, "push", "-q", "origin", "HEAD:main"], cwd=work, check=True)
    return bare


class Meter:
    """Counters of one PostgreSQL database and one Redis server, read as deltas."""

    def __init__(self, db_url: str, db_name: str, redis_port: int) -> None:
        self.db_url, self.db_name, self.redis_port = db_url, db_name, redis_port

    def read(self) -> dict[str, float]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_returned,"
                " tup_fetched, pg_database_size(datname) FROM pg_stat_database"
                " WHERE datname = %s",
                [self.db_name],
            ).fetchone()
            assert row is not None
            tables = conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
            ).fetchall()
            sizes = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables"
            ).fetchone()
            logs = conn.execute(
                "SELECT coalesce(sum(length(data)), 0), count(*) FROM builds_logbatch"
            ).fetchone()
        keys = ["commits", "inserted", "updated", "deleted", "returned", "fetched", "db_bytes"]
        out: dict[str, float] = dict(zip(keys, map(float, row), strict=True))
        out["table_bytes"] = float(sizes[0]) if sizes else 0.0
        out["log_bytes"], out["log_batches"] = (float(logs[0]), float(logs[1])) if logs else (0, 0)
        for name, ins, upd, dele in tables:
            out[f"rows:{name}"] = float(ins + upd + dele)
        stats = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "INFO", "commandstats"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        total = 0.0
        for line in stats.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line.split(":", 1)
                calls = float(rest.split(",")[0].split("=")[1])
                if name != "cmdstat_info":
                    out[f"redis:{name[8:]}"] = calls
                    total += calls
        out["redis_commands"] = total
        return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def settle() -> None:
    # Backends report their counters when they go idle or exit: give them time to.
    time.sleep(12)


def measured(
    meter: Meter, waiter: Waiter, work: Callable[[], Any], idle_rate: dict[str, float]
) -> tuple[dict[str, float], float]:
    before = meter.read()
    polls = waiter.polls
    started = time.monotonic()
    work()
    settle()
    seconds = time.monotonic() - started
    raw = delta(before, meter.read())
    out = {k: v - idle_rate.get(k, 0.0) * seconds for k, v in raw.items()}
    # The waiter's polls and the meter's own reading (4 statements) are not the build's.
    out["commits"] -= (waiter.polls - polls) + 4
    return out, seconds


class Waiter:
    """Waits for events to finish by asking the database, one SELECT (one transaction) a
    poll, and counts the polls, so they are taken out of the figures exactly. (Polling the
    API instead would add each request's own queries and token bookkeeping to the build's.)"""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.polls = 0

    def wait(self, event_id: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                self.polls += 1
                statuses = [
                    row[0]
                    for row in conn.execute(
                        "SELECT status FROM builds_build WHERE event_id = %s", [event_id]
                    ).fetchall()
                ]
                if statuses and all(status in TERMINAL for status in statuses):
                    assert set(statuses) == {"SUCCESS"}, statuses
                    return
                time.sleep(0.1)
        raise RuntimeError(f"event {event_id} did not finish")


def start_event(client: httpx.Client, pipeline_id: int, job: str) -> int:
    answer = client.post("/v4/events", json={"pipelineId": pipeline_id, "startFrom": job})
    if answer.status_code != 201:
        raise RuntimeError(f"POST /v4/events: {answer.status_code} {answer.text}")
    return int(answer.json()["id"])


def run_job(client: httpx.Client, waiter: Waiter, pipeline_id: int, job: str) -> None:
    waiter.wait(start_event(client, pipeline_id, job))


def run_jobs(client: httpx.Client, waiter: Waiter, pipeline_id: int, job: str, n: int) -> None:
    for _ in range(n):
        run_job(client, waiter, pipeline_id, job)


def report(title: str, values: dict[str, float], per: float, unit: str) -> None:
    print(f"\n## {title} (per {unit})")
    keys = ["commits", "inserted", "updated", "deleted", "table_bytes", "log_bytes", "log_batches"]
    for key in (*keys, "redis_commands"):
        print(f"{key:>16}: {values.get(key, 0.0) / per:12.3f}")
    rows = sorted(
        ((k[5:], v / per) for k, v in values.items() if k.startswith("rows:") and v / per >= 0.05),
        key=lambda kv: -kv[1],
    )
    print("  rows written by table: " + ", ".join(f"{k} {v:.2f}" for k, v in rows))
    redis = sorted(
        ((k[6:], v / per) for k, v in values.items() if k.startswith("redis:") and v / per >= 0.05),
        key=lambda kv: -kv[1],
    )
    print("  Redis commands: " + ", ".join(f"{k} {v:.2f}" for k, v in redis))


def throughput(client: httpx.Client, waiter: Waiter, pipeline_id: int) -> None:
    """One event whose FAN one-step builds all start at once; builds a minute until the last
    ends. (Events of one job would not do: builds of a job collapse into the newest one and
    wait for each other, as in Screwdriver.)"""
    started = time.monotonic()
    waiter.wait(start_event(client, pipeline_id, "~commit"), timeout=900)
    minutes = (time.monotonic() - started) / 60
    print(
        f"\n## Throughput: {FAN} one-step builds started at once finished in "
        f"{minutes * 60:.1f} s: {FAN / minutes:.0f} builds per minute "
        f"(API, worker with SD_WORKERS={os.environ.get('SD_WORKERS', '2')}, PostgreSQL"
        f" and Redis on one {os.cpu_count()}-core machine)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--only-throughput", action="store_true")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    db_name = f"sd_capacity_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    admin = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    user, host = admin.get("user", "postgres"), admin.get("host", "127.0.0.1")
    db_url = f"postgres://{user}@{host}:{admin.get('port', 5432)}/{db_name}"
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    serve = None
    try:
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp_name:
            tmp = Path(tmp_name)
            port = free_port()
            env = {
                **os.environ,
                "SD_DATA_DIR": str(tmp / "data"),
                "PORT": str(port),
                "DATABASE_URL": db_url,
                "SD_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "SD_LOG_LEVEL": "WARNING",
                "SD_DEMO": "false",
            }
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
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if client.get("/v4/status").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            repo = make_repo(tmp)
            pipeline = client.post("/v4/pipelines", json={"checkoutUrl": f"{repo}#main"}).json()
            pipeline_id = int(pipeline["id"])
            waiter = Waiter(db_url)
            run_job(client, waiter, pipeline_id, "one")  # warm-up
            meter = Meter(db_url, db_name, redis_port)
            if args.only_throughput:
                throughput(client, waiter, pipeline_id)
                return 0
            settle()
            idle, idle_seconds = measured(meter, waiter, lambda: time.sleep(30), {})
            idle_rate = {k: v / idle_seconds for k, v in idle.items()}
            print(f"idle: {idle_seconds:.0f} s, {idle['commits']:.0f} commits (periodic tasks)")

            ten, _ = measured(
                meter,
                waiter,
                lambda: run_jobs(client, waiter, pipeline_id, "ten", args.builds),
                idle_rate,
            )
            report("A ten-step build", ten, args.builds, "build")

            lines, _ = measured(
                meter, waiter, lambda: run_job(client, waiter, pipeline_id, "lines"), idle_rate
            )
            report("100,000 log lines of 80 bytes, one build", lines, 1, "whole build")
            report("100,000 log lines of 80 bytes", lines, 100_000, "line")
            noise, _ = measured(
                meter, waiter, lambda: run_job(client, waiter, pipeline_id, "noise"), idle_rate
            )
            report("100,000 lines of 80 random base64 bytes", noise, 100_000, "line")

            throughput(client, waiter, pipeline_id)
    finally:
        if serve is not None:
            os.killpg(serve.pid, 15)
            serve.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
