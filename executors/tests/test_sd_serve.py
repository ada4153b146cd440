"""`sd_serve` keeps the server up when the worker dies and leaves nothing behind when stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import BASE_DIR, run_git, wait_until
from executors.launcher import process

pytestmark = pytest.mark.slow

SLOW = """
jobs:
  main:
    image: buildpack-deps
    steps:
      - wait: echo started; sleep 300
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log: Path

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip()

    def ours(self) -> list[process.ProcInfo]:
        """Every process of this server: sd_serve and all its descendants."""
        return [p for p in process.descendants(self.proc.pid) if p.alive]

    def child(self, needle: str) -> int | None:
        for info in self.ours():
            if info.ppid == self.proc.pid and needle in _cmdline(info.pid):
                return info.pid
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v4/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    data = tmp_path / "data"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SD_DATA_DIR": str(data),
        "PORT": str(port),
        "SD_DEMO": "false",
        "SD_QUEUE_POLL_SECONDS": "0.05",
    }
    _migrate(env)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "sd_serve", "--port", str(port)],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    s = Server(proc=proc, url=f"http://127.0.0.1:{port}", env=env, log=log)
    try:
        wait_until(lambda: _answers(s.url), timeout=60, what="the server to answer")
        wait_until(lambda: s.child("sd_worker"), timeout=30, what="the worker to start")
        yield s
    finally:
        for info in s.ours():
            process.signal_pid(info.pid, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _start_slow_build(s: Server, tmp_path: Path) -> int:
    bare = tmp_path / "slow.git"
    work = tmp_path / "slow"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    (work / "screwdriver.yaml").write_text(SLOW)
    run_git("add", "-A", cwd=work)
    run_git("commit", "-q", "-m", "slow", cwd=work)
    run_git("push", "-q", "origin", "HEAD:main", cwd=work)
    token = s.manage("sd_token", "create", "--username", "admin", "--admin")
    api = httpx.Client(base_url=f"{s.url}/v4", headers={"Authorization": f"Bearer {token}"})
    pipeline = api.post("/pipelines", json={"checkoutUrl": f"{bare}#main"}).json()
    event = api.post("/events", json={"pipelineId": pipeline["id"], "startFrom": "main"}).json()
    (build,) = api.get(f"/events/{event['id']}/builds").json()

    def printing() -> bool:
        lines = api.get(f"/builds/{build['id']}/steps/wait/logs").json()
        return any(line["m"] == "started" for line in lines)

    wait_until(printing, timeout=60, what="the build to start its step")
    return int(build["id"])


def test_a_killed_worker_is_replaced_while_the_server_keeps_answering(server: Server) -> None:
    old = server.child("sd_worker")
    assert old is not None
    # The cluster and its pool, once it has started them.
    wait_until(
        lambda: len([p for p in server.ours() if p.pgid == old]) > 1,
        timeout=30,
        what="the worker's pool",
    )

    os.killpg(old, signal.SIGKILL)
    assert _answers(server.url)
    new = wait_until(
        lambda: (pid := server.child("sd_worker")) != old and pid, timeout=20, what="a new worker"
    )

    assert new != old
    assert not [p for p in process.processes() if p.pgid == old and p.alive]
    assert _answers(server.url)
    log = server.log.read_text()
    assert "The worker exited (killed by SIGKILL)" in log and "starting a new one" in log


@pytest.mark.parametrize("how", ["SIGTERM to sd_serve", "Ctrl-C to its process group"])
def test_a_stop_ends_the_server_the_worker_and_running_builds_within_ten_seconds(
    server: Server, tmp_path: Path, how: str
) -> None:
    build_id = _start_slow_build(server, tmp_path)
    everything = {p.pid for p in server.ours()}
    assert any("executors.launcher" in _cmdline(pid) for pid in everything)
    assert any(_cmdline(pid).startswith("sleep 300") for pid in everything)

    started = time.monotonic()
    if how == "SIGTERM to sd_serve":
        server.proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(server.proc.pid, signal.SIGINT)
    server.proc.wait(timeout=15)
    stopped_in = time.monotonic() - started

    left = [pid for pid in everything if _alive(pid)]
    assert left == [], [_cmdline(pid) for pid in left]
    assert stopped_in < 10, f"stopping took {stopped_in:.1f} s"
    status = server.manage(
        "shell",
        "-c",
        f"from builds.models import Build; b = Build.objects.get(pk={build_id}); "
        "print(b.status, '|', b.status_message)",
    )
    assert status.splitlines()[-1].startswith("ABORTED | "), status
    assert "SIGTERM" in status or "server stopped" in status


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_web_server_that_cannot_start_stops_sd_serve_with_a_reason(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SD_DATA_DIR": str(tmp_path / "data"),
        "SD_DEMO": "false",
    }
    _migrate(env)
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "sd_serve", "--port", str(port)],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
    finally:
        taken.close()
    assert done.returncode != 0
    assert "The web server could not start: it exited 5 times in a row" in done.stderr


def test_with_no_worker_it_serves_the_api_alone_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SD_DATA_DIR": str(tmp_path / "data"),
        "SD_DEMO": "false",
    }
    _migrate(env)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "sd_serve", "--no-worker", "--port", str(port)],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    s = Server(proc=proc, url=f"http://127.0.0.1:{port}", env=env, log=log)
    try:
        wait_until(lambda: _answers(s.url), timeout=60, what="the API to answer")
        time.sleep(2)  # a worker, were one started, would be up by now
        assert s.child("sd_worker") is None
        assert s.child("daphne_server") is not None
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "builds run on its workers" in log.read_text()
    finally:
        for info in s.ours():
            process.signal_pid(info.pid, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
