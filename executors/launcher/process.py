"""Finding and ending every process a build started, including ones that left its group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/PID/stat the launcher needs."""

    pid: int
    ppid: int
    pgid: int
    state: str

    @property
    def alive(self) -> bool:
        """Whether the process still runs (a zombie only waits to be reaped)."""
        return self.state not in ("Z", "X")


def set_child_subreaper() -> bool:
    """Make orphaned descendants reparent to this process, so they can be found and ended."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The process's own symbols hold libc's: looking the library up by name would run
        # ldconfig, 5 ms of every launcher's start.
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def has_proc() -> bool:
    """Whether /proc can be scanned for processes (Linux)."""
    return (_PROC / "self" / "stat").exists()


def _read_stat(pid: str) -> ProcInfo | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields after its last ")" don't.
    fields = raw[raw.rfind(b")") + 2 :].split(None, 3)
    try:
        return ProcInfo(int(pid), int(fields[1]), int(fields[2]), fields[0].decode())
    except (IndexError, ValueError):
        return None


def processes() -> list[ProcInfo]:
    """Every process visible in /proc."""
    # Plain names and descriptors, not Path objects: a scan reads every process's stat file,
    # and a sweep scans several times, so its cost is the end of every build on a busy host.
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir(_PROC):
            if name.isdigit():
                info = _read_stat(name)
                if info is not None:
                    found.append(info)
    return found


def descendants(root: int, table: Iterable[ProcInfo] | None = None) -> list[ProcInfo]:
    """Every process whose parent chain leads to `root` (zombies included)."""
    children: dict[int, list[ProcInfo]] = {}
    for info in processes() if table is None else table:
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcInfo] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def group_alive(pgid: int, table: Iterable[ProcInfo] | None = None) -> bool:
    """Whether any live (non-zombie) process remains in process group `pgid` (in `table`, a
    scan of /proc, or a new one)."""
    if not has_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(
        info.pgid == pgid and info.alive for info in (processes() if table is None else table)
    )


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: int) -> None:
    """Send `sig` to a process that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap_children(keep: Iterable[int] = (), table: Iterable[ProcInfo] | None = None) -> None:
    """Collect exited children (orphans reparented to us), except those a Popen owns; `table`
    is a scan of /proc taken just before, if there is one."""
    keep_set = set(keep)
    if table is None:
        _reap_waitable(keep_set)
        return
    me = os.getpid()
    for info in table:
        if info.ppid == me and not info.alive and info.pid not in keep_set:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.pid, os.WNOHANG)


def _reap_waitable(keep: set[int]) -> None:
    """Collect exited children one at a time, without a scan of /proc (the server's supervisor
    does this five times a second, each scan reading every process's stat file): `waitid`
    peeks at one that has exited and leaves it be when a Popen owns it (its `poll` collects it,
    and any after it are collected on the next call)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return  # no children at all
        if info is None or info.si_pid in keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)


def kill_everything(
    groups: Iterable[int],
    *,
    grace: float,
    sweep: bool,
    owned: Iterable[int] = (),
    while_waiting: Callable[[], None] | None = None,
) -> None:
    """End process groups and, with `sweep`, every descendant of ours: SIGTERM, grace, SIGKILL.

    `sweep` is only for a process that exists to run one build (the launcher): it ends all of
    its descendants and reaps orphans, which would be wrong inside a shared process. `owned`
    are children a Popen will wait for, so they must not be reaped here; `while_waiting` runs
    between checks.
    """
    me = os.getpid()
    owned_set = set(owned)
    group_list = list(groups)
    # One scan of /proc serves each round's checks and reaping (a scan of a busy host's
    # processes takes milliseconds).
    scanning = has_proc() and (sweep or bool(group_list))

    def scan() -> list[ProcInfo]:
        return processes() if scanning else []

    def live(table: list[ProcInfo]) -> list[ProcInfo]:
        return [p for p in descendants(me, table) if p.alive] if sweep else []

    def groups_alive(table: list[ProcInfo]) -> bool:
        return any(group_alive(g, table if scanning else None) for g in group_list)

    def settle() -> list[ProcInfo]:
        # Dying processes may still write; keep their pipe drained so they never block.
        if while_waiting is not None:
            while_waiting()
        table = scan()
        if sweep:
            reap_children(owned_set, table)
        return table

    for pgid in group_list:
        signal_group(pgid, signal.SIGTERM)
    for info in live(scan()):
        signal_pid(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pause = 0.002
    while time.monotonic() < deadline:
        table = settle()
        if not live(table) and not groups_alive(table):
            break
        # Most processes end within milliseconds of SIGTERM: look again soon, then less often.
        time.sleep(pause)
        pause = min(0.02, pause * 2)
    # Repeat because a process may fork between our scan and its death.
    for _ in range(100):
        for pgid in group_list:
            signal_group(pgid, signal.SIGKILL)
        table = settle()
        remaining = live(table)
        for info in remaining:
            signal_pid(info.pid, signal.SIGKILL)
        if not remaining and not groups_alive(table):
            return
        time.sleep(0.02)
    settle()
