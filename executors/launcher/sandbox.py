"""Local builds in a bubblewrap sandbox: the build container of the local executor.

The agent of agent.py runs as pid 1 of fresh namespaces made by bubblewrap (`bwrap`, the
sandbox Flatpak uses), so local builds run their steps exactly as the Docker executor does:
one shell session through the agent, the checkout done by the launcher outside. Inside:

- the system is read-only; the build's workspace is the only writable place on disk, with a
  fresh `/tmp` (memory) and `/dev`, and HOME in the workspace;
- the server's data folder (database, secret key, logs, every other workspace), homes, `/run`
  (the sockets of Docker and of local databases), `/var/lib`, `/var/log` and the hosts' keys
  are covered by empty folders;
- its own PID namespace (no other process is visible in `/proc`), IPC and UTS namespaces;
- no capabilities, `no_new_privs`; under a root server, an unprivileged user as well;
- an empty environment except what the launcher's files export.

The network is shared: builds fetch their dependencies, and so can reach what listens on the
host's addresses. A build ends with its launcher: bwrap dies with its parent.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .agent import agent_command

# Covered whatever the operator says: where a machine keeps its secrets, sockets and data.
ALWAYS_HIDDEN = (
    "/home",
    "/root",
    "/run",
    "/var/run",
    "/tmp",  # noqa: S108 - covered, not used
    "/var/tmp",  # noqa: S108 - covered, not used
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/mail",
    "/var/backups",
    "/var/cache",
    "/srv",
    "/mnt",
    "/media",
    "/etc/ssh",
    "/etc/ssl/private",
)
# Covered with an empty folder everyone may write in, as on any machine.
SCRATCH = ("/tmp", "/var/tmp")  # noqa: S108 - fresh empty folders in the sandbox
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(Exception):
    """The sandbox could not be set up; the message says why."""


@dataclass(frozen=True)
class Sandbox:
    """How to wrap one build: what to hide and who runs it."""

    workspace: Path | None
    hide: Sequence[Path] = ()
    # A root server runs builds as this (uid, gid); None keeps the server's own user.
    user: tuple[int, int] | None = None
    # False: a network namespace of its own with nothing but loopback (no network at all).
    network: bool = True
    bwrap: str = field(default_factory=lambda: shutil.which("bwrap") or "bwrap")

    @property
    def home(self) -> Path:
        """HOME inside: a folder of the workspace, so it is the build's and lasts the build."""
        return self.workspace / "home" if self.workspace else Path("/")

    def argv(self, command: Sequence[str]) -> list[str]:
        """The bwrap command line that runs `command` in this sandbox."""
        args = [
            self.bwrap,
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *([] if self.network else ["--unshare-net"]),
            "--hostname",
            "sd-build",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        if os.geteuid() != 0:
            # Without privileges bwrap needs a user namespace; inside it the ids stay the same.
            args.append("--unshare-user")
        elif self.user is not None:
            # Root sets the sandbox up, then setpriv (in the sandbox) becomes the build user;
            # the change of user clears every capability, and no_new_privs keeps them away.
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        # Covers first, parents before children; then what must show through them. The
        # workspace may lie under a cover: its folders there are made passable and empty.
        covered = _covered([*self.hide, *self._impassable()])
        for path in covered:
            if str(path) in SCRATCH:
                args += ["--perms", "01777"]
            args += ["--tmpfs", str(path)]
        for path in _revealed():
            args += ["--ro-bind", str(path), str(path)]
        if self.workspace is not None:
            for folder in reversed(self.workspace.parents):
                if any(c in folder.parents for c in covered):
                    args += ["--perms", "0755", "--dir", str(folder)]
            ws = str(self.workspace)
            args += ["--bind", ws, ws]
        # The agent changes to each step's folder itself, as the build user.
        args += ["--chdir", "/"]
        args.append("--clearenv")
        for name, value in (
            ("PATH", PATH),
            ("HOME", str(self.home)),
            ("LANG", "C.UTF-8"),
            ("USER", "sd-build"),
            ("LOGNAME", "sd-build"),
        ):
            args += ["--setenv", name, value]
        if os.geteuid() == 0 and self.user is not None:
            uid, gid = self.user
            drop = [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
            ]
            return [*args, "--", *drop, *command]
        return [*args, "--", *command]

    def _impassable(self) -> list[Path]:
        """Parents of the workspace that the build user could not pass: covered, not shown."""
        if self.workspace is None or self.user is None:
            return []
        out = []
        for folder in self.workspace.parents:
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if not mode & 0o001:
                out.append(folder)
        return out

    def start_agent(self, control: Path) -> subprocess.Popen[bytes]:
        """Start the agent (agent.py) in the sandbox, listening in `control`."""
        assert self.workspace is not None
        self.home.mkdir(exist_ok=True)
        if self.user is not None:
            hand_over(self.workspace, self.user)
        # bwrap says on stderr (the launcher's log) why it could not start; the agent, which
        # the steps could ptrace, must hold no descriptor of a host file, so it drops it.
        quiet = ["/bin/sh", "-c", 'exec 2>/dev/null; exec "$@"', "sd-sandbox"]
        try:
            return subprocess.Popen(
                self.argv([*quiet, *agent_command(control)]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None,
                close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start bwrap: {exc}") from exc


def _covered(hide: Iterable[Path]) -> list[Path]:
    """The folders to cover, parents first."""
    wanted = {Path(p) for p in ALWAYS_HIDDEN} | {Path(p) for p in hide}
    # A symlink (/var/run -> /run) is covered through its target; a missing folder needs no
    # cover, and bwrap could not make its mount point on the read-only root anyway.
    out = [
        path
        for path in wanted
        if path.is_absolute() and path != Path("/") and path.is_dir() and not path.is_symlink()
    ]
    return sorted(out, key=lambda p: (len(p.parts), str(p)))


def _revealed() -> list[Path]:
    """Files a build needs that live under a covered folder: the resolver's configuration."""
    out = []
    resolv = Path("/etc/resolv.conf")
    with_target = resolv.resolve() if resolv.is_symlink() else None
    if with_target is not None and with_target.is_file():
        out.append(with_target)
    return out


def hand_over(root: Path, user: tuple[int, int]) -> None:
    """Give `root` and everything in it to `user`, never following a symlink.

    The walk goes through directory handles, so a renamed folder cannot lead it elsewhere,
    and it leaves alone any file with more than one name: a hard link to a file outside the
    workspace must never become the build's.
    """
    uid, gid = user
    os.chown(root, uid, gid, follow_symlinks=False)
    for _directory, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in dirs + files:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                continue
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def probe(user: tuple[int, int] | None = None, bwrap: str | None = None) -> str | None:
    """Why no sandbox can start here, or None when one can."""
    program = bwrap or shutil.which("bwrap")
    if program is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    argv = Sandbox(workspace=None, user=user, bwrap=program).argv(["/bin/true"])
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not run: {exc}"
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap could not start a sandbox: {said[-1] if said else proc.returncode}"
    return None
