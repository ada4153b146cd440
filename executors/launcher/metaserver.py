"""`meta` in a container without Python: a POSIX-sh client and the launcher answering it.

The client takes a lock file with `set -C` (an atomic exclusive create), writes its arguments
NUL-separated to `meta.req`, says `go` on the `meta` FIFO and reads the answer from the
`meta.res` FIFO: the exit status on the first line, then what to print (stdout when the
status is 0, stderr otherwise). It then says `done`; the launcher removes the lock and writes
a line to `meta.wait`, where clients that found the lock taken are waiting. Only shell
builtins are used, so any image with `/bin/sh` has a working `meta`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shlex
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from . import meta, sd_cmd, template_commands
from .command_formats import container_habitat, container_refusal
from .confined import Confined

META_SH = """#!/bin/sh
# meta get [--external sd@P:JOB] KEY | meta set [--json-value] KEY VALUE: the launcher does it (see
# docs/launcher-protocol.md), so the image needs nothing but /bin/sh.
c=%(control)s
until ( set -C; : >"$c/meta.lock" ) 2>/dev/null; do
  IFS= read -r _ <"$c/meta.wait" || :
done
printf '%%s\\0' "$@" >"$c/meta.req"
echo go >"$c/meta"
{
  IFS= read -r code || code=1
  fd=2
  [ "$code" != 0 ] || fd=1
  while IFS= read -r line; do printf '%%s\\n' "$line" >&"$fd"; done
  [ -z "$line" ] || printf '%%s' "$line" >&"$fd"
} <"$c/meta.res"
echo done >"$c/meta"
exit "${code:-1}"
"""

# A client that took the lock and died never says `done`: take the lock back after this long.
STALE_LOCK_SECONDS = 10.0
# A request is a few words; anything bigger is not from our client.
MAX_REQUEST_BYTES = 1 << 20


def client(control: Path) -> bytes:
    """The shell `meta` that talks to the launcher through `control`."""
    return (META_SH % {"control": shlex.quote(str(control))}).encode("utf-8")


def install(bin_dir: Path, control: Path) -> Path:
    """Write the shell `meta` into `bin_dir`."""
    target = bin_dir / "meta"
    target.write_bytes(client(control))
    target.chmod(0o755)
    return target


class MetaServer:
    """Answers the shell `meta` of one build from a thread of the launcher."""

    def __init__(
        self,
        control: Path,
        meta_path: Path,
        environ: Mapping[str, str] | None = None,
        *,
        api_url: str = "",
        token: str = "",
        tree: Confined | None = None,
    ) -> None:
        self.control = control
        self.meta_path = meta_path
        # The steps may replace any of these files (or the directories) with links to host
        # files: everything is opened below handles, never through a link (see confined.py).
        self._own_tree = tree is None
        self.tree = tree or Confined(meta_path.parent)
        self._control = Confined(control)
        # The steps' environment (SD_PIPELINE_ID), for `--external`; the launcher sets it once
        # it has built that environment.
        self.environ: Mapping[str, str] = environ or {}
        # This thread runs on the host, outside the container's network isolation: it asks
        # only the launcher's own API with the launcher's own token, never an SD_API_URL or
        # SD_TOKEN that the job's environment, a secret or a `meta -u/-t` could have changed.
        self.api_url = api_url
        self.token = token
        with self._control.directory(control) as directory:
            for name in ("meta", "meta.res", "meta.wait"):
                with contextlib.suppress(FileExistsError):
                    os.mkfifo(name, 0o600, dir_fd=directory)
        # Read-write opens never block and never see end-of-file on a FIFO (Linux).
        self._requests = self._control.open(control / "meta", os.O_RDWR, kind=stat.S_IFIFO)
        self._wake = self._control.open(control / "meta.wait", os.O_RDWR, kind=stat.S_IFIFO)
        self._done = threading.Event()
        # Closing writes here so the serving thread leaves its select at once, not after the
        # poll interval: the build's final status waits for this thread to end.
        self._stop_read, self._stop_write = os.pipe()
        self._answered_at: float | None = None
        self._thread = threading.Thread(target=self._serve, name="sd-meta", daemon=True)

    def start(self) -> None:
        """Begin answering."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering."""
        self._done.set()
        with contextlib.suppress(OSError):
            os.write(self._stop_write, b"x")
        self._thread.join(timeout=5)
        for fd in (self._requests, self._wake, self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._control.close()
        if self._own_tree:
            self.tree.close()

    def _serve(self) -> None:
        buffer = b""
        while not self._done.is_set():
            ready, _, _ = select.select([self._requests, self._stop_read], [], [], 0.5)
            if self._stop_read in ready:
                break
            if ready:
                with contextlib.suppress(BlockingIOError):
                    buffer += os.read(self._requests, 4096)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line == b"go":
                    self._answer()
                elif line == b"done":
                    self._release()
            self._reclaim_stale_lock()

    def _answer(self) -> None:
        try:
            raw = self._control.read(self.control / "meta.req", MAX_REQUEST_BYTES)
            args = [os.fsdecode(a) for a in raw.split(b"\0")[:-1]]
            environ = {**self.environ, "SD_API_URL": self.api_url, "SD_TOKEN": self.token}
            if args[:1] == [template_commands.MARKER] and len(args) >= 5:
                # A template command's client: it sent the file it read, the launcher calls the API.
                command, path, readable, text = args[1:5]
                code, out, err = template_commands.run(
                    command, args[5:], environ, text if readable == "1" else None, path
                )
            elif args[:1] == [sd_cmd.MARKER] and len(args) >= 2:
                code, out, err = self._sd_cmd(Path(args[1]), args[2:], environ)
            else:
                with self.tree.directory(self.meta_path.parent) as meta_dir:
                    code, out, err = meta.run(args, self.meta_path, environ, meta_dir)
        except (OSError, ValueError) as exc:
            code, out, err = 1, "", f"meta: {exc}\n"
        payload = f"{code}\n{out if code == 0 else err}".encode("utf-8", "surrogateescape")
        self._answered_at = time.monotonic()
        fd = self._open_response()
        if fd is None:
            self._release()
            return
        try:
            os.set_blocking(fd, True)
            while payload:
                payload = payload[os.write(fd, payload) :]
        except OSError:
            self._release()
        finally:
            os.close(fd)

    def _sd_cmd(
        self, cwd: Path, argv: list[str], environ: Mapping[str, str]
    ) -> tuple[int, str, str]:
        """A container's `sd-cmd`: fetch a binary into the workspace, or call the API."""
        if argv[:1] != ["exec"]:
            return sd_cmd.run(argv, environ, sd_cmd.ReadFile(cwd, self.tree))
        root = self.tree.root
        logs = root / "artifacts" / ".sd" / "commands"
        place = sd_cmd.Place(self.tree, root / ".sd-cmd", self.tree, logs)
        name = argv[1].partition("@")[0] if len(argv) > 1 else ""
        lines: list[str] = []
        try:
            prepared = sd_cmd.prepare(argv[1] if len(argv) > 1 else "", environ, place)
            lines = prepared.log
            if prepared.form == "docker":
                raise sd_cmd.CommandError(container_refusal(prepared.name, prepared.command))
            if prepared.form == "habitat":
                answer = container_habitat(prepared.name, prepared.command, prepared.path)
                sd_cmd.write_log(place, name, [*lines, "the step runs hab pkg install and exec"])
                return 0, answer, ""
        except sd_cmd.CommandError as exc:
            sd_cmd.write_log(place, name, [*lines, f"error: {exc}"])
            return 1, "", f"sd-cmd: {exc}\n"
        sd_cmd.write_log(place, name, [*lines, f"the step runs {prepared.path}"])
        return 0, f"{prepared.path}\n", ""

    def _open_response(self) -> int | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                return self._control.open(self.control / "meta.res", os.O_WRONLY, kind=stat.S_IFIFO)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    return None
                time.sleep(0.005)
        return None

    def _release(self) -> None:
        self._answered_at = None
        with contextlib.suppress(OSError):
            self._control.unlink(self.control / "meta.lock")
        with contextlib.suppress(OSError):
            os.write(self._wake, b"free\n")

    def _reclaim_stale_lock(self) -> None:
        try:
            with self._control.directory(self.control) as directory:
                taken = os.stat("meta.lock", dir_fd=directory, follow_symlinks=False).st_mtime
        except OSError:
            return
        since = self._answered_at
        if since is not None:
            stale = time.monotonic() - since > STALE_LOCK_SECONDS
        else:
            stale = time.time() - taken > STALE_LOCK_SECONDS
        if stale:
            self._release()
