"""The stack under test: a fresh clone of this repository, started with `make run`.

Each test process (the suite runs in parallel, one stack per process) clones the committed
HEAD once, lets `make run` install it, and serves it on a free port with a data folder of its
own. Tests reach it as a user would: HTTP, git, `manage.py` commands and signals.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent


def _run_dir() -> Path:
    # One folder per run of the suite, named by the first process and inherited by the
    # parallel ones: they share the clone and its .venv.
    if not os.environ.get("SD_ACCEPTANCE_DIR"):
        os.environ["SD_ACCEPTANCE_DIR"] = tempfile.mkdtemp(prefix="sd-acceptance-")
    return Path(os.environ["SD_ACCEPTANCE_DIR"])


RUN_DIR = _run_dir()
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Acceptance",
    "GIT_AUTHOR_EMAIL": "acceptance@example.com",
    "GIT_COMMITTER_NAME": "Acceptance",
    "GIT_COMMITTER_EMAIL": "acceptance@example.com",
}


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll `check` until it returns something true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip()


# -- processes, as `ps` shows them ------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    argv: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def processes() -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_bytes()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        found.append(
            Proc(int(entry.name), int(fields[1]), int(fields[2]), fields[0].decode(), argv.strip())
        )
    return found


def descendants(root: int) -> list[Proc]:
    table = processes()
    children: dict[int, list[Proc]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc)
    out: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child.pid)
    return out


# -- the clone --------------------------------------------------------------------------------


def shared_clone() -> Path:
    """The fresh clone, made and installed once for every test process of this run."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    clone = RUN_DIR / "clone"
    with open(RUN_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (clone / ".venv" / ".run-installed").exists():
            if clone.exists():
                subprocess.run(["rm", "-rf", str(clone)], check=True)
            git("clone", "--quiet", "--no-local", str(REPO), str(clone), cwd=RUN_DIR)
            # What `make run` installs first, done under the lock so parallel stacks share it.
            subprocess.run(
                ["make", "venv-run"],
                cwd=clone,
                check=True,
                capture_output=True,
                timeout=900,
                env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")},
            )
    return clone


# -- a running stack --------------------------------------------------------------------------


@dataclass
class Stack:
    """`make run` in the clone: its URL, data folder, log and the admin's API token."""

    clone: Path
    port: int
    data_dir: Path
    log: Path
    env: dict[str, str]
    make: subprocess.Popen[bytes] | None = None
    _token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.make = subprocess.Popen(
                ["make", "run"],
                cwd=self.clone,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session, like a terminal's: Ctrl-C is SIGINT to this process group.
                start_new_session=True,
            )
        wait_for(self.answers, timeout=180, what=f"`make run` answering on {self.url}")

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v4/status", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.clone / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    def shell(self, code: str) -> str:
        """What `manage.py shell -c CODE` prints last: an operator's look at the database."""
        return self.manage("shell", "-c", code).splitlines()[-1]

    @property
    def token(self) -> str:
        if not self._token:
            self._token = self.manage("sd_token", "create", "--username", "admin")
        return self._token

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v4",
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )

    # processes

    def serve(self) -> Proc:
        """The `sd_serve` process."""
        assert self.make is not None
        return wait_for(
            lambda: next((p for p in descendants(self.make.pid) if "sd_serve" in p.argv), None),  # type: ignore[union-attr]
            timeout=60,
            what="sd_serve to start",
        )

    def everything(self) -> list[Proc]:
        assert self.make is not None
        return [p for p in descendants(self.make.pid) if p.alive]

    def worker(self) -> Proc | None:
        serve = self.serve()
        return next(
            (p for p in processes() if p.ppid == serve.pid and "sd_worker" in p.argv and p.alive),
            None,
        )

    def web(self) -> Proc | None:
        serve = self.serve()
        return next(
            (p for p in processes() if p.ppid == serve.pid and "daphne" in p.argv and p.alive),
            None,
        )

    def launcher_of(self, build_id: int) -> Proc | None:
        return next(
            (
                p
                for p in self.everything()
                if "executors.launcher" in p.argv and f"--build-id {build_id} " in p.argv + " "
            ),
            None,
        )

    def ctrl_c(self) -> float:
        """SIGINT to the process group, as a terminal's Ctrl-C; how long until make exited."""
        assert self.make is not None
        started = time.monotonic()
        os.killpg(self.make.pid, signal.SIGINT)
        self.make.wait(timeout=30)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.make is None:
            return
        for proc in self.everything():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        if self.make.poll() is None:
            self.make.kill()
            self.make.wait(timeout=10)


STACKS: list[Stack] = []


def new_stack(name: str, **env: str) -> Stack:
    clone = shared_clone()
    root = RUN_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    root.mkdir(parents=True)
    port = free_port()
    data_dir = root / "data"
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "SD_DATA_DIR": str(data_dir),
        **env,
    }
    stack = Stack(
        clone=clone, port=port, data_dir=data_dir, log=root / "make-run.log", env=full_env
    )
    STACKS.append(stack)
    stack.start()
    return stack


def start(stack: Stack, bare: Path, start_from: str = "~commit", **body: Any) -> dict[str, Any]:
    """Create a pipeline for `bare` (once) and start an event; return the event."""
    api = stack.api()
    found = api.get("/pipelines", params={"search": bare.stem}).json()
    mine = [p for p in found if p["scmRepo"]["url"].endswith(f"{bare}#main")]
    if mine:
        pipeline = mine[0]
    else:
        created = api.post("/pipelines", json={"checkoutUrl": f"{bare}#main"})
        assert created.status_code == 201, created.text
        pipeline = created.json()
    answer = api.post(
        "/events", json={"pipelineId": pipeline["id"], "startFrom": start_from, **body}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def builds_of(stack: Stack, event_id: int) -> list[dict[str, Any]]:
    return list(stack.api().get(f"/events/{event_id}/builds").json())


def build(stack: Stack, build_id: int) -> dict[str, Any]:
    return dict(stack.api().get(f"/builds/{build_id}").json())


def log_lines(stack: Stack, build_id: int, step: str) -> list[str]:
    lines: list[str] = []
    api = stack.api()
    while True:
        page = api.get(f"/builds/{build_id}/steps/{step}/logs", params={"from": len(lines)})
        lines += [line["m"] for line in page.json()]
        if page.headers.get("X-More-Data") != "true" or not page.json():
            return lines


FINISHED = {"SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "COLLAPSED"}

# A job that says hello and ends; one that says "started" and then waits ten minutes.
QUICK = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - hello: echo hello
"""
SLEEPER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - wait: echo started; sleep 600
"""


def first_build(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """The event's one build, once it exists."""
    (row,) = wait_for(lambda: builds_of(stack, event["id"]), timeout=30, what="the build")
    return dict(row)


def wait_for_line(stack: Stack, build_id: int, step: str, line: str) -> None:
    """Until the build runs and `step` has printed `line`."""
    wait_for(
        lambda: (
            build(stack, build_id)["status"] == "RUNNING"
            and line in log_lines(stack, build_id, step)
        ),
        timeout=90,
        what=f"build {build_id} to print {line!r} in {step}",
    )


def finished(stack: Stack, build_id: int, timeout: float) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (b := build(stack, build_id))["status"] in FINISHED and b,
            timeout=timeout,
            what=f"build {build_id} to end",
        )
    )
