"""The credential a checkout clones a private repository with, and how git gets it.

The launcher asks the API for it (`POST /v4/builds/{id}/checkout-credential`) only when the
launch spec's checkout (or a child pipeline's `configCheckout`, the parent's repository) says
`auth`, once, during `sd-setup-scm`, and keeps it for the git commands that reach the remote;
then it is gone. A parent's credential is its own, under the answer's `configCheckout`.
It never appears in a URL, an argv, an environment a step sees, or a log line (the launcher
masks it too, should git ever print it):

- the value lives in anonymous memory (a memfd) of the launcher, which git's processes open
  by its /proc path for as long as the clone runs: no file holds it, in the workspace or
  anywhere else, and a launcher killed mid-clone takes it with it. Where the system has no
  memfd, a 0600 file in a private (0700) temporary folder outside the workspace is used,
  removed as soon as the clone is done;
- a token reaches git through a credential helper named on git's argv (`-c`), scoped to the
  repository's scheme, host and port, after `credential.helper=` has dropped every helper
  the machine's or the clone's configuration names (so none stores it);
- a deploy key reaches ssh through GIT_SSH_COMMAND (`-i` with that path, no ssh config, no
  ssh-agent), with the operator's known hosts when the API sends them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TOKEN = "token"  # noqa: S105 - the name of a kind of credential, not one
SSH_KEY = "sshKey"
KINDS = frozenset({TOKEN, SSH_KEY})
# Where the API's answer holds a child pipeline's parent repository's credential.
CONFIG_CREDENTIAL = "configCheckout"
# What the launcher's own environment may say that would write the credential down (traces),
# add configuration after ours, or offer git other credentials: none of it reaches git while
# it holds the credential. (A job's environment never does: see Runner.)
_DROPPED = frozenset(
    {
        "SSH_AUTH_SOCK",
        "SSH_ASKPASS",
        "GIT_ASKPASS",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_CURL_VERBOSE",
    }
)
_DROPPED_PREFIXES = ("GIT_TRACE", "GIT_REDACT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


class CredentialError(Exception):
    """The API's answer is no usable credential; the message says why.

    `reason` is the API's own sentence when it refused (the SCM would not issue one, say):
    the build's status message.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, repr=False)
class CloneCredential:
    """A user name and token for HTTPS, or a private SSH key (and the known hosts)."""

    kind: str
    username: str = ""
    password: str = ""
    private_key: str = ""
    known_hosts: str = ""

    def __repr__(self) -> str:
        return f"CloneCredential({self.kind})"

    @classmethod
    def from_answer(cls, answer: Any, expected: str) -> CloneCredential:
        """Check the API's answer to the credential request for the kind the spec named."""
        if not isinstance(answer, dict) or answer.get("type") != expected:
            raise CredentialError(f"the API did not answer with a {expected} credential")
        values = {
            name: answer.get(key) or ""
            for name, key in (
                ("username", "username"),
                ("password", "password"),
                ("private_key", "privateKey"),
                ("known_hosts", "knownHosts"),
            )
        }
        if not all(isinstance(v, str) and "\0" not in v for v in values.values()):
            raise CredentialError("the API's credential is not text")
        credential = cls(kind=expected, **values)
        if expected == TOKEN and (
            not credential.username
            or not credential.password
            or any(c in credential.username + credential.password for c in "\r\n")
        ):
            raise CredentialError("the API's token credential is empty or spans lines")
        if expected == SSH_KEY and "PRIVATE KEY" not in credential.private_key:
            raise CredentialError("the API's deploy key is not a private key")
        return credential

    def secrets(self) -> list[str]:
        """The values to mask wherever the build's output goes."""
        return [v for v in (self.password, self.private_key) if v]


class MemoryFiles:
    """Files that git's processes open by path while no file exists on disk (see above)."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._folder: str | None = None

    def add(self, name: str, data: bytes) -> str:
        """Hold `data` and return the path git's processes open it by."""
        path = self._in_memory(name, data)
        return path if path is not None else self._in_private_folder(name, data)

    def _in_memory(self, name: str, data: bytes) -> str | None:
        create = getattr(os, "memfd_create", None)
        if create is None:
            return None
        fd = create(f"sd-{name}", os.MFD_CLOEXEC)
        self._fds.append(fd)
        # ssh refuses a key that others may read; the memory file starts 0777.
        os.fchmod(fd, 0o600)
        _write_all(fd, data)
        # A child (git, its credential helper, ssh) opens the launcher's descriptor anew by
        # this path; ssh closes every descriptor it inherited, so /dev/fd would not do.
        path = f"/proc/{os.getpid()}/fd/{fd}"
        return path if os.path.exists(path) else None

    def _in_private_folder(self, name: str, data: bytes) -> str:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="sd-git-")  # 0700
        path = os.path.join(self._folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return path

    def close(self) -> None:
        """Forget every file: the memory is freed, the folder removed."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def origin_of(url: str) -> str:
    """scheme://host[:port] of an http(s) URL: what a credential helper is scoped to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise CredentialError(f"a token clones over http(s) only, not {url!r}")
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class CloneAccess:
    """What git needs to reach a private repository; `close` forgets all of it."""

    def __init__(self, credential: CloneCredential | None, url: str) -> None:
        self.credential = credential
        self.files = MemoryFiles()
        self.git_args: list[str] = []
        self.variables: dict[str, str] = {}
        self.note = ""
        try:
            if credential is not None and credential.kind == TOKEN:
                self._token(credential, url)
            elif credential is not None and credential.kind == SSH_KEY:
                self._ssh_key(credential)
        except BaseException:
            self.files.close()
            raise

    def _token(self, credential: CloneCredential, url: str) -> None:
        origin = origin_of(url)
        text = f"username={credential.username}\npassword={credential.password}\n"
        path = self.files.add("credential", text.encode())
        # The helper answers `get` only; git's `store` and `erase` calls are ignored.
        helper = f'!f() {{ test "$1" = get && cat {shlex.quote(path)}; }}; f'
        # An empty helper drops the helpers named by the machine's, the user's or the clone's
        # configuration; then ours, for this origin alone (a redirect elsewhere gets nothing).
        self.git_args = ["-c", "credential.helper=", "-c", f"credential.{origin}.helper={helper}"]

    def _ssh_key(self, credential: CloneCredential) -> None:
        key = (
            credential.private_key
            if credential.private_key.endswith("\n")
            else (credential.private_key + "\n")
        )
        options = ["-F", "/dev/null", "-i", self.files.add("deploy-key", key.encode())]
        options += ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        if credential.known_hosts.strip():
            known = self.files.add("known-hosts", credential.known_hosts.encode())
            options += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        else:
            # As Screwdriver's checkout does; SD_SSH_KNOWN_HOSTS on the server pins the keys.
            options += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
            self.note = (
                "The SSH host key of the repository's server is not checked: the server has "
                "no SD_SSH_KNOWN_HOSTS.\n"
            )
        self.variables = {
            "GIT_SSH_COMMAND": shlex.join(["ssh", *options]),
            "GIT_SSH_VARIANT": "ssh",
        }

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` for a git command that uses the credential."""
        env = {
            k: v
            for k, v in base.items()
            if k not in _DROPPED and not k.startswith(_DROPPED_PREFIXES)
        }
        return {**env, **self.variables}

    def argv(self, command: list[str]) -> list[str]:
        """`command` (a git argv) with the credential's options right after `git`."""
        return [command[0], *self.git_args, *command[1:]]

    def close(self) -> None:
        """Forget the credential."""
        self.files.close()
