"""A launcher started ahead of its builds: it forks a fresh launcher for each one.

A new Python process costs every build the interpreter's start and the launcher's imports:
about 70 ms on an idle machine, several times that on a busy one. The local executor starts
this server once in each worker process (`python -S -m executors.launcher.forkserver FD`), with
the environment, folder and umask every launcher gets and no build's token, and asks it for
each build's launcher over the Unix socket FD. The server has imported the launcher and done
nothing else; each build's launcher is a fork of it, so a build starts from that state and
never from another build's.

The server never holds a secret: a request is the launcher's options as JSON (build id,
workspace, API address), with two file descriptors: the launcher's log (its stderr) and the
read end of a pipe where the worker wrote the variables the launcher's environment gets for
this build (its token among them). Only the forked launcher reads that pipe. The answer is
the launcher's pid, as `--detach` prints it, or nothing when it did not start.

A forked launcher shows the command line a launcher started on its own would have (`ps`
names its build), written over the server's, which is started with room for it (`TITLE_ROOM`).
The executor also writes a pid file beside the workspace (`pid_file`): its pid and start time,
which together name one process for good, where a pid alone may come back as another's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import sys
import traceback
from pathlib import Path

from .__main__ import main

MAX_REQUEST_BYTES = 64 * 1024
MAX_ENVIRONMENT_BYTES = 1 << 20
# Bytes of blank command line the server is started with, for its forks to write theirs on.
TITLE_ROOM = 1024


def server_command(fd: int) -> list[str]:
    """The fork server's command line: its socket, then the room its launchers' titles take."""
    return [sys.executable, "-S", "-m", "executors.launcher.forkserver", str(fd), " " * TITLE_ROOM]


def retitle(argv: list[str]) -> None:
    """Show `argv` as this process's command line (`ps`, /proc/PID/cmdline), written over the
    one it was started with and cut to its length; nothing where /proc does not say where."""
    try:
        # Fields after the command's closing parenthesis start at field 3 (state);
        # arg_start and arg_end are fields 48 and 49 (proc(5)).
        fields = Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()
        start, end = int(fields[48 - 3]), int(fields[49 - 3])
    except (OSError, IndexError, ValueError):
        return
    room = end - start
    if room <= 1:
        return
    # Arguments are NUL-separated; the last byte stays NUL so the kernel shows the whole area.
    title = b"\0".join(arg.encode(errors="replace") for arg in argv)[: room - 1]
    ctypes.memmove(start, title + b"\0" * (room - len(title)), room)


def pid_file(workspace: Path) -> Path:
    """Where the executor records the forked launcher of the build in `workspace`."""
    return workspace.parent / f"{workspace.name}.launcher.pid"


def start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot), or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its last ")" don't.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return None if fields[0] in (b"Z", b"X") else int(fields[19])
    except (IndexError, ValueError):
        return None


def record(workspace: Path, pid: int) -> None:
    """Write the pid file of the launcher `pid` of the build in `workspace`."""
    ticks = start_ticks(pid)
    if ticks is not None:
        pid_file(workspace).write_text(f"{pid} {ticks}\n")


def recorded_launcher(workspace: Path) -> int | None:
    """The pid of the build's forked launcher, if the one its pid file names still runs."""
    try:
        pid_text, _, ticks_text = pid_file(workspace).read_text().strip().partition(" ")
    except OSError:
        return None
    if not (pid_text.isdigit() and ticks_text.isdigit()):
        return None
    pid = int(pid_text)
    return pid if start_ticks(pid) == int(ticks_text) else None


def serve(sock: socket.socket) -> None:
    """Answer requests until the worker closes its end of `sock`."""
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(sock, MAX_REQUEST_BYTES, 2)
        except OSError:
            return
        if not data and not fds:
            return  # the worker is gone
        try:
            pid = _launch(sock, data, fds)
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"launcher fork server: could not start a launcher: {exc}\n")
            pid = None
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            sock.send(str(pid).encode() if pid else b"")
        except OSError:
            return


def _launch(sock: socket.socket, data: bytes, fds: list[int]) -> int | None:
    """Fork the launcher that `data` describes; return its pid once it has detached."""
    options = json.loads(data)
    if len(fds) != 2 or not (
        isinstance(options, list) and all(isinstance(o, str) for o in options)
    ):
        raise ValueError("a request is a list of options with a log and an environment pipe")
    log_fd, environment_fd = fds
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        _run_child(sock, options, log_fd, environment_fd, read_fd, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        printed = pipe.read(64).decode(errors="replace").strip()
    os.waitpid(child, 0)
    return int(printed) if printed.isdigit() else None


def _run_child(
    sock: socket.socket,
    options: list[str],
    log_fd: int,
    environment_fd: int,
    read_fd: int,
    write_fd: int,
) -> None:
    """In the fork: become the build's launcher (`main --detach`); never return."""
    code = 1
    try:
        # Nothing of the server's may reach the build: not the socket later requests come on.
        sock.close()
        os.close(read_fd)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.dup2(write_fd, 1)  # `--detach` prints the detached launcher's pid here
        os.close(write_fd)
        with os.fdopen(environment_fd, "rb") as pipe:
            variables = json.loads(pipe.read(MAX_ENVIRONMENT_BYTES))
        os.environ.update({str(k): str(v) for k, v in variables.items()})
        retitle([sys.executable, "-m", "executors.launcher", *options])
        code = main([*options, "--detach"])
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
