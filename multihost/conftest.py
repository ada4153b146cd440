"""The multi-host cluster: one API host and three worker hosts in network namespaces.

The cluster is made once for the module and torn down even when a test fails: namespaces,
links, forwarders, processes and the database. It skips, saying why, without root or
`ip netns`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from acceptance.stack import wait_for
from multihost import hosts
from multihost.hosts import GATEWAY, SUBNET, Host

ADMIN_DB = os.environ.get("SD_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_PORT = 6379
API_PORT = 8000
# Short enough that a lost build is seen within the test's budget: the launcher renews its
# lease three times per lease; the reaper runs every minute (its shortest period).
LEASE_SECONDS = 10
REAPER_MINUTES = 1
FINISHED = {"SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "COLLAPSED"}
ACTIVE = {"QUEUED", "RUNNING", "BLOCKED"}
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Multihost",
    "GIT_AUTHOR_EMAIL": "multihost@example.com",
    "GIT_COMMITTER_NAME": "Multihost",
    "GIT_COMMITTER_EMAIL": "multihost@example.com",
}


def admin_connection(url: str = ADMIN_DB) -> Any:
    psycopg = pytest.importorskip("psycopg")
    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )


@dataclass
class Cluster:
    """The hosts, the shared settings, an API client, and a view of the database."""

    root: Path
    database: str
    api_host: Host
    workers: list[Host]
    env: dict[str, str]
    report: list[str] = field(default_factory=list)
    token: str = ""
    db: Any = None
    started: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.api_host.address}:{API_PORT}"

    def manage(self, *args: str) -> str:
        """`manage.py ARGS` on the API host; what it printed."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.api_host.netns, sys.executable, "manage.py", *args],
            cwd=hosts.REPO,
            env={**self.env, "SD_DATA_DIR": str(self.api_host.data_dir)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v4",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            trust_env=False,
        )

    def start_workers(self, count: int) -> None:
        """Run `sd_worker` on the first COUNT worker hosts (those not running it yet)."""
        while self.started < count:
            host = self.workers[self.started]
            # SD_WORKER_REMOTE: refuse settings that work only beside the API (where the
            # worker command checks them).
            env = {**self.env, "SD_WORKER_REMOTE": "true"}
            host.run([sys.executable, "manage.py", "sd_worker"], env, "worker.log")
            self.started += 1
        # A cluster is ready once it has registered its periodic tasks.
        for host in self.workers[:count]:
            wait_for(
                lambda h=host: "Periodic tasks scheduled" in (h.root / "worker.log").read_text(),  # type: ignore[misc]
                timeout=60,
                what=f"the worker on {host.name} to start",
            )

    def ran_on(self, build_ids: list[int]) -> dict[int, str]:
        """Which worker host's workspace each build (its last attempt) ran in."""
        rows = self.db.execute(
            "SELECT id, executor_state->>'workspace' FROM builds_build WHERE id = ANY(%s)",
            [build_ids],
        ).fetchall()
        where: dict[int, str] = {}
        for build_id, workspace in rows:
            for host in self.workers:
                if workspace and workspace.startswith(str(host.data_dir)):
                    where[build_id] = host.name
        return where


def make_repo(root: Path, name: str, yaml: str) -> Path:
    bare = root / f"{name}.git"
    work = root / name
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("clone", "--quiet", str(bare), str(work), cwd=root)
    (work / "screwdriver.yaml").write_text(yaml)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return bare


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reason = hosts.why_not_runnable()
    if reason:
        pytest.skip(f"The multi-host test cannot run: {reason}.")
    # One run at a time: the namespaces and the bridge have fixed names.
    lock = open(Path(tempfile.gettempdir()) / f"{hosts.PREFIX}.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    hosts.clean_leftovers(drop_database)
    root = Path(tempfile.mkdtemp(prefix="sd-multihost-"))
    database = f"sd_multihost_{os.getpid()}"
    api_host = Host("api", f"{SUBNET}.10", root / "api")
    workers = [Host(f"w{i}", f"{SUBNET}.{10 + i}", root / f"w{i}") for i in (1, 2, 3)]
    api_url = f"http://{api_host.address}:{API_PORT}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": f"postgres://postgres@{GATEWAY}:5432/{database}",
        # The channel layer (and, where SD_REDIS_URL also moves the queue there, the queue:
        # named after the run, so that nothing else on this Redis takes its tasks).
        "SD_REDIS_URL": f"redis://{GATEWAY}:{REDIS_PORT}/11",
        "SD_QUEUE_NAME": database,
        # Every host signs and checks build tokens with the same key.
        "SD_SECRET_KEY": secrets.token_urlsafe(40),
        "SD_INSTANCE": database,
        "SD_API_URL": api_url,
        "SD_ALLOWED_HOSTS": api_host.address,
        "SD_CSRF_TRUSTED_ORIGINS": api_url,
        "SD_BUILD_LEASE_SECONDS": str(LEASE_SECONDS),
        "SD_REAPER_INTERVAL_MINUTES": str(REAPER_MINUTES),
        "SD_WORKERS": "2",
        "SD_LOCAL_SANDBOX": os.environ.get("SD_MULTIHOST_SANDBOX", "none"),
        "SD_LOGIN_FAILURE_LIMIT": "0",
    }
    cluster = Cluster(root, database, api_host, workers, env)
    forwarder = None
    try:
        with admin_connection() as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        hosts.remember(database=database)
        hosts.create_switch()
        for host in [api_host, *workers]:
            host.create()
        forwarder = hosts.start_forwarders(root / "forwarder.log", [5432, REDIS_PORT])
        cluster.manage("migrate", "--noinput")
        cluster.token = cluster.manage("sd_token", "create", "--username", "admin", "--admin")
        api_host.run(
            [
                sys.executable,
                "-m",
                "screwdriver_site.daphne_server",
                "-b",
                api_host.address,
                "-p",
                str(API_PORT),
                "screwdriver_site.asgi:application",
            ],
            env,
            "web.log",
        )

        def answers() -> bool:
            try:
                return httpx.get(f"{api_url}/v4/status", timeout=3, trust_env=False).is_success
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=60, what="the API host answering")
        # Fail now, not after minutes of builds that wait, if a worker host cannot reach it.
        probe = f"import urllib.request; urllib.request.urlopen('{api_url}/v4/status', timeout=5)"
        for host in workers:
            reached = subprocess.run(
                ["ip", "netns", "exec", host.netns, sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert reached.returncode == 0, f"{host.name} cannot reach {api_url}: {reached.stderr}"
        cluster.db = admin_connection(ADMIN_DB.rsplit("/", 1)[0] + f"/{database}")
        yield cluster
    finally:
        for host in [api_host, *workers]:
            host.destroy()
        hosts.destroy_switch()
        if cluster.db is not None:
            cluster.db.close()
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait(timeout=10)
        drop_database(database)
        hosts.STATE.unlink(missing_ok=True)
        print(f"\nmulti-host: the hosts' logs are in {root}")
        lock.close()
