"""The embedded default engine: the launcher runs as a local process in a fresh workspace.

The launcher (our code) runs as the server's user; the steps (the repository's code) run in
a bubblewrap sandbox that the launcher starts, unless the operator turned it off or none can
start here (see executors/launcher/sandbox.py and `sandbox_status`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from executors.base import BuildHandle, Executor, ExecutorError, LaunchRequest, start_stats
from executors.launcher import forkserver
from executors.launcher.sandbox import probe

logger = logging.getLogger(__name__)

# The launcher gets a clean environment: nothing of the server's (database URL, secret key)
# may leak into a build.
BUILD_UMASK = 0o022
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "TZ")


def workspace_of(build_id: int) -> Path:
    return Path(settings.SD_WORKSPACES_DIR) / f"build-{build_id}"


def build_user() -> tuple[int, int] | None:
    """Who runs the sandboxed steps: for a root server SD_LOCAL_BUILD_USER, else the server."""
    if os.geteuid() != 0:
        return None
    name = str(settings.SD_LOCAL_BUILD_USER)
    try:
        entry = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        if name.isdigit():
            return int(name), int(name)
        raise ExecutorError(
            f"SD_LOCAL_BUILD_USER names no user of this machine: {name!r}.", permanent=True
        ) from None
    if entry.pw_uid == 0:
        raise ExecutorError("SD_LOCAL_BUILD_USER must not be root.", permanent=True)
    return entry.pw_uid, entry.pw_gid


@functools.cache
def _probe(user: tuple[int, int] | None) -> str | None:
    return probe(user)


def sandbox_status() -> tuple[bool, str]:
    """Whether local builds run sandboxed, and if not, why not."""
    mode = str(settings.SD_LOCAL_SANDBOX).strip().lower()
    if mode == "none":
        return False, "SD_LOCAL_SANDBOX is none"
    try:
        reason = _probe(build_user())
    except ExecutorError as exc:
        reason = exc.message
    return (True, "") if reason is None else (False, reason)


def launcher_environment() -> dict[str, str]:
    """The environment of every launcher before its build's own variables (its token)."""
    env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONPATH"] = str(settings.BASE_DIR)
    return env


class ForkServer:
    """This process's launcher fork server (executors/launcher/forkserver.py).

    Started on first use; started again when it died or the launchers' environment changed.
    When it cannot be used, `launch` answers None and the caller starts a launcher of its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._env: dict[str, str] = {}
        self._owner = 0

    def launch(
        self, env: dict[str, str], options: list[str], variables: dict[str, str], log_fd: int
    ) -> int | None:
        """Fork a launcher with `options`, `variables` added to its environment and its stderr
        on `log_fd`; its pid, 0 when it did not start, None when there is no fork server."""
        with self._lock:
            for _attempt in range(2):
                sock = self._running(env)
                if sock is None:
                    return None
                try:
                    self._send(sock, options, variables, log_fd)
                except OSError:
                    # It died since the last build: nothing reached it, so ask a new one.
                    self._stop()
                    continue
                try:
                    answer = sock.recv(64)
                except OSError as exc:
                    # The launcher may have started: never start a second one for the build.
                    self._stop()
                    raise ExecutorError(f"The launcher fork server did not answer: {exc}") from exc
                return int(answer) if answer.isdigit() else 0
            return None

    def _send(
        self, sock: socket.socket, options: list[str], variables: dict[str, str], log_fd: int
    ) -> None:
        # The token goes through a pipe that only the build's own launcher reads.
        read_fd, write_fd = os.pipe()
        try:
            try:
                os.write(write_fd, json.dumps(variables).encode())
            finally:
                os.close(write_fd)
            socket.send_fds(sock, [json.dumps(options).encode()], [log_fd, read_fd])
        finally:
            os.close(read_fd)

    def _running(self, env: dict[str, str]) -> socket.socket | None:
        alive = self._proc is not None and self._proc.poll() is None
        if alive and self._sock is not None and self._owner == os.getpid() and self._env == env:
            return self._sock
        self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                forkserver.server_command(theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd=str(settings.BASE_DIR),
                pass_fds=(theirs.fileno(),),
                # The server keeps its own files private (umask 077); a build's files are
                # made as on any machine, in a workspace only this user can enter.
                umask=BUILD_UMASK,
            )
        except OSError as exc:
            logger.warning("The launcher fork server could not start: %s", exc)
            ours.close()
            return None
        finally:
            theirs.close()
        ours.settimeout(30)
        self._sock, self._env, self._owner = ours, env, os.getpid()
        return ours

    def _stop(self) -> None:
        if self._sock is not None and self._owner == os.getpid():
            self._sock.close()  # it exits when its end of the socket closes
        if self._proc is not None and self._owner == os.getpid():
            with contextlib.suppress(OSError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc = self._sock = None


_FORK_SERVER = ForkServer()


def hidden_from_builds() -> list[Path]:
    """The server's own folders, covered in the sandbox besides the system's usual places."""
    paths = [Path(settings.SD_DATA_DIR), Path(settings.BASE_DIR), Path.home()]
    return paths + [Path(p) for p in settings.SD_LOCAL_SANDBOX_HIDE]


class LocalExecutor(Executor):
    """Runs each build's launcher as a detached process group on this machine."""

    name = "local"

    def start(self, request: LaunchRequest) -> dict[str, Any]:
        workspace = self.fresh_workspace(request.build_id)
        sandbox = self.sandbox_args(workspace)
        pid = self.start_launcher(request, workspace, sandbox)
        return {
            "pid": pid,
            "workspace": str(workspace),
            "sandboxed": bool(sandbox),
            "stats": start_stats(),
        }

    def fresh_workspace(self, build_id: int) -> Path:
        """An empty workspace for the build."""
        workspace = workspace_of(build_id)
        if workspace.exists():
            # A retried start after a crash: never let a new run see an old run's files.
            shutil.rmtree(workspace, ignore_errors=True)
        forkserver.pid_file(workspace).unlink(missing_ok=True)
        workspace.mkdir(parents=True, exist_ok=False)
        return workspace

    def start_launcher(
        self, request: LaunchRequest, workspace: Path, extra_args: tuple[str, ...] = ()
    ) -> int:
        """Start the build's detached launcher; return its pid (also its group id)."""
        env = launcher_environment()
        options = [
            "--api-url",
            request.api_url,
            "--build-id",
            str(request.build_id),
            "--workspace",
            str(workspace),
            *extra_args,
        ]
        variables = {
            "SD_LAUNCHER_TOKEN": request.token,
            "SD_LOG_MAX_LINE_BYTES": str(settings.SD_LOG_MAX_LINE_BYTES),
            "SD_LOG_MAX_STEP_BYTES": str(settings.SD_LOG_MAX_STEP_BYTES),
        }
        log_path = workspace.parent / f"build-{request.build_id}.launcher.log"
        with open(log_path, "ab") as log:
            pid = _FORK_SERVER.launch(env, options, variables, log.fileno())
        if pid == 0:
            raise ExecutorError(f"The launcher did not start; see {log_path.name}.")
        if pid is not None:
            forkserver.record(workspace, pid)
            return pid
        argv = [
            sys.executable,
            # The launcher needs the standard library only: skipping site-packages saves
            # 10 ms or more of every build's start (its log socket adds them when a page
            # first watches the build: executors/launcher/livesocket.py).
            "-S",
            "-m",
            "executors.launcher",
            *options,
            "--detach",
        ]
        # The detaching parent prints the child's pid and exits; a file (not a pipe) receives it
        # so the long-lived child never holds a pipe we wait on.
        with tempfile.TemporaryFile() as out, open(log_path, "ab") as log:
            try:
                proc = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=log,
                    env={**env, **variables},
                    cwd=str(settings.BASE_DIR),
                    timeout=30,
                    check=False,
                    umask=BUILD_UMASK,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ExecutorError(f"Could not start the launcher: {exc}") from exc
            out.seek(0)
            printed = out.read().decode(errors="replace").strip()
        if proc.returncode != 0 or not printed.isdigit():
            raise ExecutorError(
                f"The launcher did not start (exit {proc.returncode}); see {log_path.name}."
            )
        return int(printed)

    @staticmethod
    def sandbox_args(workspace: Path) -> tuple[str, ...]:
        """The launcher's options that sandbox the steps, or none when they run without."""
        sandboxed, reason = sandbox_status()
        if not sandboxed:
            if str(settings.SD_LOCAL_SANDBOX).strip().lower() == "bwrap":
                raise ExecutorError(
                    f"This server runs local builds only in a sandbox (SD_LOCAL_SANDBOX is "
                    f"bwrap), and none can start: {reason}.",
                    permanent=True,
                )
            return ()
        args = ["--sandbox"]
        for path in hidden_from_builds():
            args += ["--hide", str(path)]
        if str(settings.SD_LOCAL_SANDBOX_NETWORK).strip().lower() == "none":
            args.append("--no-network")
        user = build_user()
        if user is not None:
            args += ["--build-user", f"{user[0]}:{user[1]}"]
        return tuple(args)

    def stop(self, build: BuildHandle) -> None:
        pid = self._launcher_pid(build)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)

    def is_alive(self, build: BuildHandle) -> bool:
        return self._launcher_pid(build) is not None

    def launcher_alive(self, build: BuildHandle) -> bool:
        return self._launcher_pid(build) is not None

    def cleanup(self, build: BuildHandle) -> None:
        pid = self._launcher_pid(build)
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
        # Step shells run in sessions of their own; find every process of this build by the
        # workspace the launcher exported into its environment, and end them all.
        for _ in range(3):
            pids = self._build_processes(build)
            if not pids:
                break
            for stray in pids:
                _signal_group(stray, signal.SIGKILL)
                _signal(stray, signal.SIGKILL)
            time.sleep(0.1)
        workspace = workspace_of(build.build_id)
        forkserver.pid_file(workspace).unlink(missing_ok=True)
        if not settings.SD_KEEP_WORKSPACES:
            shutil.rmtree(workspace, ignore_errors=True)

    def _launcher_pid(self, build: BuildHandle) -> int | None:
        pid = build.state.get("pid")
        if not isinstance(pid, int):
            return None
        # Guard against pid reuse: only a launcher of this very build is ours to signal.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if not any(arg.startswith(b"executors.launcher") for arg in cmdline):
            return None
        workspace = workspace_of(build.build_id)
        # A launcher the fork server started has its command line: its pid file names it.
        if str(workspace).encode() in cmdline or forkserver.recorded_launcher(workspace) == pid:
            return pid
        return None

    def _build_processes(self, build: BuildHandle) -> list[int]:
        marker = f"SD_ROOT_DIR={workspace_of(build.build_id)}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                found.append(int(entry.name))
        return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
