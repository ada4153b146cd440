"""Steps in a container: a POSIX-sh agent inside it, driven by the launcher through FIFOs.

The build's image only needs `/bin/sh`. The container's main process is `AGENT_SH`, which
uses nothing but shell builtins; the launcher (on the host, or in a sidecar container of the
same pod) talks to it through FIFOs in a control directory inside the shared workspace:

- `ctl`    launcher -> agent, one command a line: `run K SHELL WRAPPER`, `kill SIG`,
           `count`, `ping`, `quit`;
- `events` agent -> launcher: `ready`, `exit K CODE`, `count N`;
- `out`    every step's stdout and stderr (background processes too), read like the local pipe;
- `env`    a regular file: the container's environment as `export -p` printed it.

The agent forgets its own environment before it runs anything, so a step's environment is
exactly what the launcher's files export (a variable a step unset stays unset).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .confined import Confined

FIFOS = ("ctl", "events", "out")
CONTROL_DIR_NAME = ".sd-agent"
# `export -p` of an image's environment; more is not an environment.
MAX_ENV_BYTES = 4 << 20

# Runs as the container's main process: `/bin/sh -c AGENT_SH sd-agent CONTROL_DIR`. A sweep
# signals every process it can see, so the agent runs only as pid 1 of its own pid namespace.
# `keep` lists the processes a sweep must spare: pid 1, the agent and the running step's
# reporter (which must live to report the code of the step a sweep killed).
AGENT_SH = r"""c=$1
if [ "$$" != 1 ]; then
  echo "sd-agent: not the first process of a container; refusing to run" >&2
  exit 70
fi
exec 3<"$c/ctl" 4>"$c/events"
export -p >"$c/env"
while IFS= read -r l; do
  case $l in
    "export "*) n=${l#export } ;;
    "declare -x "*) n=${l#declare -x } ;;
    *) continue ;;
  esac
  command unset "${n%%=*}" 2>/dev/null
done <"$c/env"
reporter=
sweep() {
  n=0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    case " 1 $$ $reporter " in *" $p "*) continue ;; esac
    read -r s 2>/dev/null <"/proc/$p/stat" || continue
    s=${s##*) }
    case $s in Z*|X*) continue ;; esac
    n=$((n + 1))
    [ -z "$1" ] || kill -s "$1" "$p" 2>/dev/null
  done
}
echo ready >&4
while IFS=' ' read -r op a b w <&3; do
  case $op in
    run)
      (
        "$b" -e "$w" <&- >"$c/out" 2>&1 </dev/null 4>&-
        echo "exit $a $?" >&4
      ) 3<&- &
      reporter=$!
      ;;
    kill) sweep "$a"; echo "count $n" >&4 ;;
    count) sweep ""; echo "count $n" >&4 ;;
    quit) break ;;
  esac
done
sweep KILL
"""


class AgentError(Exception):
    """The agent could not be reached, or went away."""


def control_dir(workspace: Path) -> Path:
    """Where a workspace keeps the agent's FIFOs."""
    return workspace / CONTROL_DIR_NAME


def prepare_control_dir(directory: Path) -> Path:
    """Create the control directory and its FIFOs (before the container starts)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in FIFOS:
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(path.lstat().st_mode):
                path.unlink()
        if not path.exists():
            os.mkfifo(path, 0o600)
    return directory


def agent_command(directory: Path | str) -> list[str]:
    """The container's command line that runs the agent."""
    return ["/bin/sh", "-c", AGENT_SH, "sd-agent", str(directory)]


# -- reading `export -p` ----------------------------------------------------------------------

_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}


def _ansi_c(text: str, i: int) -> tuple[str, int]:
    """Decode bash's `$'...'` quoting starting after the opening quote; return (value, end)."""
    out = []
    while i < len(text) and text[i] != "'":
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ANSI_C:
                out.append(_ANSI_C[nxt])
                i += 2
            elif nxt == "x":
                digits = "".join(c for c in text[i + 2 : i + 4] if c in "0123456789abcdefABCDEF")
                out.append(chr(int(digits, 16)) if digits else "\\x")
                i += 2 + len(digits)
            elif nxt in "01234567":
                j = i + 1
                while j < len(text) and j < i + 4 and text[j] in "01234567":
                    j += 1
                out.append(chr(int(text[i + 1 : j], 8)))
                i = j
            else:
                out.append(nxt)
                i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out), i + 1


def _word(text: str, i: int) -> tuple[str, int]:
    """Read one shell word (quotes and escapes as `export -p` prints them) from `i`."""
    out = []
    while i < len(text) and text[i] not in " \t\n":
        ch = text[i]
        if ch == "'":
            end = text.find("'", i + 1)
            end = len(text) if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif ch == "$" and text.startswith("$'", i):
            value, i = _ansi_c(text, i + 2)
            out.append(value)
        elif ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        out.append(text[i + 1])
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            i += 1
        elif ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


def parse_exports(text: str) -> dict[str, str]:
    """The variables in `export -p` output of dash, busybox ash or bash (not valueless ones)."""
    env: dict[str, str] = {}
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " \t\n":
            i += 1
        for prefix in ("export ", "declare -x "):
            if text.startswith(prefix, i):
                i += len(prefix)
                break
        else:
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        word, i = _word(text, i)
        name, sep, value = word.partition("=")
        if sep and name:
            env[name] = value
    return env


# -- the launcher's side ----------------------------------------------------------------------


def _open_fifo_pair(directory: Confined, path: Path) -> tuple[int, int]:
    """Open a FIFO to read without blocking, plus a writer of our own so it never hits EOF."""
    read_fd = directory.open(path, os.O_RDONLY, kind=stat.S_IFIFO)
    write_fd = directory.open(path, os.O_WRONLY, kind=stat.S_IFIFO)
    return read_fd, write_fd


class Agent:
    """The launcher's handle on the agent in the build container."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The container may swap these FIFOs (or the directory) for links to host files: open
        # them below a handle, never through a link, and only if they are FIFOs.
        self._files = Confined(directory)
        self.out_fd, self._out_writer = _open_fifo_pair(self._files, directory / "out")
        self.events_fd, self._events_writer = _open_fifo_pair(self._files, directory / "events")
        self._ctl_fd = -1
        self._buffer = b""
        self.codes: dict[int, int] = {}
        self.counts: list[int] = []
        self.ready = False
        self.gone = False

    def writer(self) -> int:
        """A new descriptor of our writing end of `out`, for processes of the launcher's own."""
        return os.dup(self._out_writer)

    def connect(self, timeout: float, should_give_up: Callable[[], bool] = lambda: False) -> None:
        """Wait until the agent has opened its end and said it is ready."""
        deadline = time.monotonic() + timeout
        while self._ctl_fd < 0:
            try:
                self._ctl_fd = self._files.open(
                    self.directory / "ctl", os.O_WRONLY, kind=stat.S_IFIFO
                )
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise AgentError(f"cannot open the agent's control FIFO: {exc}") from exc
                if time.monotonic() > deadline or should_give_up():
                    raise AgentError(
                        f"the build container did not start within {timeout:g} s"
                    ) from None
                time.sleep(0.02)
        while not self.ready:
            if time.monotonic() > deadline or should_give_up():
                raise AgentError(f"the build container did not answer within {timeout:g} s")
            self.wait(0.1)

    def environment(self) -> dict[str, str]:
        """The container's own environment (the image's ENV, HOME, PATH...)."""
        try:
            raw = self._files.read(self.directory / "env", MAX_ENV_BYTES)
        except (OSError, ValueError):
            return {}
        return parse_exports(raw.decode("utf-8", "surrogateescape"))

    def send(self, line: str) -> None:
        """Send one command; a vanished agent marks the agent gone instead of raising."""
        data = (line + "\n").encode("utf-8", "surrogateescape")
        deadline = time.monotonic() + 10
        while data and not self.gone:
            try:
                data = data[os.write(self._ctl_fd, data) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.gone = True
                time.sleep(0.01)
            except OSError:
                self.gone = True

    def alive(self) -> bool:
        """Whether the agent still holds its end of the control FIFO."""
        if self.gone or self._ctl_fd < 0:
            return not self.gone
        poller = select.poll()
        poller.register(self._ctl_fd, 0)
        # A FIFO's writer sees POLLERR once no reader is left.
        if any(event & select.POLLERR for _fd, event in poller.poll(0)):
            self.gone = True
        return not self.gone

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for events and take them in."""
        ready, _, _ = select.select([self.events_fd], [], [], timeout)
        if ready:
            self.read_events()

    def read_events(self) -> None:
        """Take in whatever events arrived."""
        while True:
            try:
                chunk = os.read(self.events_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            parts = line.decode(errors="replace").split()
            if parts == ["ready"]:
                self.ready = True
            elif len(parts) == 3 and parts[0] == "exit" and parts[1].isdigit():
                self.codes[int(parts[1])] = int(parts[2]) if parts[2].isdigit() else 255
            elif len(parts) == 2 and parts[0] == "count" and parts[1].isdigit():
                self.counts.append(int(parts[1]))

    def run(self, number: int, shell: str, wrapper: Path) -> None:
        """Start step `number`: `SHELL -e WRAPPER` in the container."""
        self.send(f"run {number} {shell} {wrapper}")

    def remaining(self, signal_name: str = "", timeout: float = 5.0) -> int | None:
        """Signal every build process in the container (or just count them); return the count."""
        before = len(self.counts)
        self.send(f"kill {signal_name}" if signal_name else "count")
        deadline = time.monotonic() + timeout
        while len(self.counts) == before and time.monotonic() < deadline and self.alive():
            self.wait(0.05)
        return self.counts[-1] if len(self.counts) > before else None

    def end_everything(self, grace: float, while_waiting: Callable[[], None]) -> None:
        """SIGTERM every build process in the container, wait `grace`, then SIGKILL the rest."""
        if self.gone or not self.remaining():
            return
        self.remaining("TERM")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.alive():
            while_waiting()
            if not self.remaining():
                return
            time.sleep(0.05)
        for _ in range(20):
            while_waiting()
            if not self.remaining("KILL") or not self.alive():
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Tell the agent to end (it kills what is left) and close our ends."""
        if self._ctl_fd >= 0:
            self.send("quit")
            os.close(self._ctl_fd)
            self._ctl_fd = -1
        for fd in (self.out_fd, self._out_writer, self.events_fd, self._events_writer):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.close()


if __name__ == "__main__":
    # `python -m executors.launcher.agent DIR`: a pod's init container prepares the FIFOs.
    import sys

    prepare_control_dir(Path(sys.argv[1]))
