"""Keeping the server's processes up, and ending every one of them when asked to stop.

`sd_serve` runs the web server and the worker as children, each in a process group of its
own, and supervises them: one that dies is started again after a back-off, and what it left
behind (a dead worker's pool) is ended first. Builds' launchers detach from the worker that
starts them; as a child subreaper the supervisor inherits them, so a Ctrl-C or a SIGTERM
(what systemd, Docker and Kubernetes send) ends builds too, leaving nothing running.

The stop, in at most STOP_BUDGET seconds: the worker and every launcher get SIGTERM while
the web server still takes the launchers' last reports; launchers still running after
LAUNCHER_GRACE are killed and their builds ended as aborted; then the web server stops, and
whatever is left of any of them is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from executors.launcher import forkserver, process

logger = logging.getLogger("sd_serve")

RESTART_FIRST = 1.0
RESTART_MAX = 30.0
# A child that ran this long was healthy: its next death restarts it after RESTART_FIRST.
HEALTHY_AFTER = 60.0
LAUNCHER_GRACE = 5.0
STOP_BUDGET = 7.0
TICK = 0.2

# A child that dies this many times in a row without ever having run HEALTHY_AFTER seconds
# cannot start (its port is taken, its settings are wrong): the server stops and says so.
GIVE_UP_AFTER = 5

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that asks for SIGTERM when the supervisor dies (SIGKILL included).

    libc is looked up here, in the supervisor, so the child between fork and exec only calls.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the request took hold
            os._exit(1)

    return hook


def describe_exit(code: int) -> str:
    """`exit code 3` or `killed by SIGKILL`."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    """One supervised process: the web server or the worker."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    ever_healthy: bool = False


def launchers_of(workspaces: Path) -> dict[int, int]:
    """The running launchers of this installation's builds: {pid: build id}."""
    found: dict[int, int] = {}
    prefix = str(workspaces)
    for info in process.processes():
        if not info.alive:
            continue
        try:
            argv = Path(f"/proc/{info.pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        args = argv.split("\0")
        if "executors.launcher" not in args or "--build-id" not in args:
            continue
        workspace = args[args.index("--workspace") + 1] if "--workspace" in args else ""
        build_id = args[args.index("--build-id") + 1]
        if workspace.startswith(prefix + os.sep) and build_id.isdigit():
            found[info.pid] = int(build_id)
    # Launchers forked by a worker's fork server have its command line: their pid files say.
    for path in workspaces.glob("build-*.launcher.pid"):
        name = path.name.removesuffix(".launcher.pid")
        pid = forkserver.recorded_launcher(workspaces / name)
        if pid is not None and name.removeprefix("build-").isdigit():
            found[pid] = int(name.removeprefix("build-"))
    return found


class Supervisor:
    """Runs `children` until SIGINT or SIGTERM; restarts one that dies; ends everything."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        workspaces: Path,
        env: dict[str, str] | None = None,
        on_builds_killed: Callable[[list[int]], None] = lambda ids: None,
    ) -> None:
        self.children = list(children)
        self.workspaces = workspaces
        self.env = env
        self.on_builds_killed = on_builds_killed
        self._stop_requests = 0
        self._pre_exec: Callable[[], None] | None = None
        self.failed = ""

    # -- running ---------------------------------------------------------------------------

    def run(self) -> bool:
        """Start the children and keep them up until asked to stop; then stop everything.

        False when it stopped because a child could not start at all (`failed` says which).
        """
        process.set_child_subreaper()
        self._pre_exec = _parent_death_signal()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        try:
            for child in self.children:
                self._start(child)
            while not self._stop_requests and not self.failed:
                self._tick()
                time.sleep(TICK)
        finally:
            # Whatever ended the loop (a signal, a child that cannot start, an error of our
            # own), nothing of the server or its builds may outlive it.
            self.stop()
        return not self.failed

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requests += 1
        if self._stop_requests == 1:
            logger.info("%s: stopping (again to stop at once).", signal.Signals(signum).name)
        else:
            logger.info("Stopping at once.")

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv,
            env=self.env,
            process_group=0,
            # preexec_fn is safe here: no other thread runs while children start.
            preexec_fn=self._pre_exec,
        )
        child.started = time.monotonic()
        logger.info("Started the %s (pid %s).", child.name, child.proc.pid)

    def _owned(self) -> list[int]:
        return [c.proc.pid for c in self.children if c.proc is not None]

    def _tick(self) -> None:
        # Launchers and a dead child's processes are ours once orphaned: collect them.
        process.reap_children(keep=self._owned())
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            # Its group outlives it (a worker's pool): nothing of the dead one may go on.
            process.signal_group(child.proc.pid, signal.SIGKILL)
            ran = now - child.started
            child.ever_healthy = child.ever_healthy or ran >= HEALTHY_AFTER
            child.quick_deaths = 0 if ran >= HEALTHY_AFTER else child.quick_deaths + 1
            if not child.ever_healthy and child.quick_deaths >= GIVE_UP_AFTER:
                self.failed = (
                    f"The {child.name} could not start: it exited {child.quick_deaths} times in "
                    f"a row ({describe_exit(code)}); see the lines above."
                )
                logger.error("%s Stopping.", self.failed)
                child.proc = None
                return
            delay = min(RESTART_MAX, RESTART_FIRST * 2 ** max(0, child.quick_deaths - 1))
            logger.warning(
                "The %s exited (%s) after %.0f s; starting a new one in %g s.",
                child.name,
                describe_exit(code),
                ran,
                delay,
            )
            child.proc = None
            child.restart_at = now + delay

    # -- stopping --------------------------------------------------------------------------

    def _running(self) -> list[Child]:
        return [c for c in self.children if c.proc is not None and c.proc.poll() is None]

    def _wait(self, until: float, done: Callable[[], bool]) -> None:
        while time.monotonic() < until and self._stop_requests < 2 and not done():
            process.reap_children(keep=self._owned())
            time.sleep(0.05)

    def stop(self) -> None:
        """End the worker, the builds and the web server, in that order, within the budget."""
        deadline = time.monotonic() + STOP_BUDGET
        web = [c for c in self.children if c.name == "web server"]
        for child in self._running():
            if child not in web:
                process.signal_group(child.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        launchers = launchers_of(self.workspaces)
        for pid in launchers:
            process.signal_pid(pid, signal.SIGTERM)
        if launchers:
            logger.info("Stopping %d running build(s).", len(launchers))
        # The web server stays up meanwhile: a stopping launcher reports how its build ended.
        self._wait(
            min(deadline, time.monotonic() + LAUNCHER_GRACE),
            lambda: not launchers_of(self.workspaces),
        )
        for child in self._running():
            process.signal_group(child.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        killed = launchers_of(self.workspaces)
        for pid in killed:
            process.signal_group(pid, signal.SIGKILL)
            process.signal_pid(pid, signal.SIGKILL)
        if killed:
            self._end_builds(sorted(set(killed.values())), deadline)
        self._wait(deadline, lambda: not self._running())
        # Whatever is left (a slow worker, a build's stray process) ends now.
        process.kill_everything(
            [c.proc.pid for c in self.children if c.proc is not None],
            grace=0,
            sweep=True,
            owned=self._owned(),
        )
        for child in self.children:
            if child.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=1)
        logger.info("Stopped.")

    def _end_builds(self, build_ids: list[int], deadline: float) -> None:
        """Record the killed builds as ended, giving up when the budget is spent."""
        worker = threading.Thread(target=self.on_builds_killed, args=(build_ids,), daemon=True)
        worker.start()
        worker.join(max(0.5, min(2.0, deadline - time.monotonic())))
