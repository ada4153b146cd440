"""Build caches: `sd-setup-cache` restores the job's cache paths, `sd-teardown-cache` saves them.

The launch spec's `cache` lists the paths of each scope, as screwdriver.yaml writes them:

    {"pipeline": ["~/.gradle"], "event": ["$SD_SOURCE_DIR/node_modules"], "job": ["out"],
     "save": ["pipeline", "event", "job"], "maxBytes": 5368709120}

A path may use `$NAME` variables of the build's environment and `~` (the build's HOME);
a relative one is relative to `$SD_SOURCE_DIR`. The launcher restores and saves only paths in
the build's workspace (`$SD_ROOT_DIR`): those are the files it shares with the sandbox or the
container; in the sandbox, HOME is a folder of the workspace, so `~/...` works there.

Restoring goes pipeline, event, job (a path in several scopes ends as the last one left it);
a cache that is missing, refused or unreadable is said in the step's log and never fails the
build, as in Screwdriver. Saving happens only after a successful build, once every process of
the build has ended; a cache whose files did not change (same digest as the server's) is not
sent again, and a pull request's build saves only its own event's caches (`save`).
"""

from __future__ import annotations

import http.client
import json
import posixpath
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .agent import CONTROL_DIR_NAME
from .cache_archive import ArchiveError, Stopped, check_archive, human_bytes, pack, survey, unpack
from .environment import expand
from .workspace import Workspace

SETUP_STEP = "sd-setup-cache"
TEARDOWN_STEP = "sd-teardown-cache"
KEYS = ("pipeline", "event", "job")
DIGEST_HEADER = "X-Cache-Digest"
_CHUNK = 1 << 20
# The launcher's own folders in the workspace: never a cache.
RESERVED = (".launcher", CONTROL_DIR_NAME)

Log = Callable[[str], None]
ShouldStop = Callable[[], bool]


class CacheTransferError(Exception):
    """The API did not give or take a cache; the message says what it answered."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class CachePathError(ValueError):
    """A cache path the launcher cannot restore or save here; the message says why."""


@dataclass(frozen=True)
class CacheSpec:
    """The launch spec's `cache`."""

    paths: dict[str, list[str]]
    save: frozenset[str]
    max_bytes: int

    @classmethod
    def of(cls, spec: Any) -> CacheSpec | None:
        """The spec's cache settings, or None when the job caches nothing."""
        if not isinstance(spec, dict):
            return None
        paths = {
            key: [str(p) for p in spec[key] if isinstance(p, str) and p]
            for key in KEYS
            if isinstance(spec.get(key), list)
        }
        paths = {key: value for key, value in paths.items() if value}
        if not paths:
            return None
        save = spec.get("save")
        try:
            max_bytes = int(spec.get("maxBytes") or 0)
        except (TypeError, ValueError):
            max_bytes = 0
        return cls(
            paths=paths,
            save=frozenset(k for k in save if k in KEYS) if isinstance(save, list) else frozenset(),
            max_bytes=max_bytes if max_bytes > 0 else 5 * 1024**3,
        )


class CacheApi:
    """The API's cache routes of one build, streaming archives to and from files."""

    def __init__(
        self,
        base: str,
        token: str,
        build_id: int,
        *,
        timeout: float = 60.0,
        attempts: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.base = urllib.parse.urlsplit(base)
        self.token = token
        self.build_id = build_id
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    def _path(self, scope: str, name: str) -> str:
        # Every character but letters, digits, "-", "_" and "~" is escaped, "." too: a name
        # of "." or ".." must reach the server as a name, not as a path step.
        quoted = urllib.parse.quote(name, safe="").replace(".", "%2E")
        return f"{self.base.path.rstrip('/')}/builds/{self.build_id}/caches/{scope}/{quoted}"

    def _connection(self) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self.base.scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(
            self.base.hostname or "127.0.0.1",
            self.base.port,
            timeout=self.timeout,
            blocksize=_CHUNK,
        )

    def _send(
        self,
        method: str,
        scope: str,
        name: str,
        handle: Callable[[http.client.HTTPResponse], Any],
        *,
        body: IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One request, resent after a connection error or a 5xx; `handle` reads the answer."""
        every = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in range(self.attempts):
            conn = self._connection()
            try:
                if body is not None:
                    body.seek(0)
                conn.request(method, self._path(scope, name), body=body, headers=every)
                response = conn.getresponse()
                if response.status >= 500:
                    raise CacheTransferError(_said(method, response), permanent=False)
                return handle(response)
            except (OSError, http.client.HTTPException, CacheTransferError) as exc:
                permanent = isinstance(exc, CacheTransferError) and exc.permanent
                if permanent or attempt == self.attempts - 1:
                    if isinstance(exc, CacheTransferError):
                        raise
                    raise CacheTransferError(f"{method} failed: {exc}", permanent=False) from exc
                time.sleep(self.backoff * (2**attempt))
            finally:
                conn.close()
        raise AssertionError("unreachable")

    def fetch(self, scope: str, name: str, into: IO[bytes], limit: int) -> str | None:
        """Write the cache's archive into `into`; return its digest, None when there is none."""

        def read(response: http.client.HTTPResponse) -> str | None:
            if response.status == 404:
                response.read()
                return None
            if response.status != 200:
                raise CacheTransferError(_said("GET", response), permanent=True)
            announced = response.getheader("Content-Length") or ""
            if announced.isdigit() and int(announced) > limit:
                raise CacheTransferError(
                    f"its archive is {human_bytes(int(announced))}, more than a cache may be",
                    permanent=True,
                )
            into.seek(0)
            into.truncate()
            total = 0
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise CacheTransferError(
                        "its archive is larger than a cache may be", permanent=True
                    )
                into.write(chunk)
            if announced.isdigit() and total != int(announced):
                raise CacheTransferError(
                    f"the answer ended after {total} of {announced} bytes", permanent=False
                )
            into.flush()
            return response.getheader(DIGEST_HEADER) or ""

        return self._send("GET", scope, name, read)  # type: ignore[no-any-return]

    def digest(self, scope: str, name: str) -> str | None:
        """The digest of the files the server holds for this cache, None when it has none."""

        def read(response: http.client.HTTPResponse) -> str | None:
            response.read()
            if response.status == 404:
                return None
            if response.status != 200:
                raise CacheTransferError(f"HEAD answered {response.status}", permanent=True)
            return response.getheader(DIGEST_HEADER) or ""

        return self._send("HEAD", scope, name, read)  # type: ignore[no-any-return]

    def store(self, scope: str, name: str, archive: IO[bytes], size: int, digest: str) -> None:
        """Send the archive (`size` bytes) as the cache's new content."""

        def read(response: http.client.HTTPResponse) -> None:
            if response.status >= 300:
                raise CacheTransferError(_said("PUT", response), permanent=True)
            response.read()

        headers = {
            "Content-Type": "application/gzip",
            "Content-Length": str(size),
            DIGEST_HEADER: digest,
        }
        self._send("PUT", scope, name, read, body=archive, headers=headers)


def _said(method: str, response: http.client.HTTPResponse) -> str:
    """`PUT answered 413: <the server's message>`."""
    raw = response.read(64 * 1024)
    try:
        message = json.loads(raw).get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{method} answered {response.status}" + (f": {message}" if message else "")


@dataclass
class Caches:
    """Restores and saves one build's caches (the two internal steps)."""

    spec: CacheSpec
    api: CacheApi
    workspace: Workspace
    env: Mapping[str, str]
    reserved: Sequence[str] = RESERVED
    clock: Callable[[], float] = time.monotonic
    _targets: dict[str, str] = field(default_factory=dict)

    def target(self, path: str) -> list[str]:
        """The parts, below the workspace, of the folder or file a cache path names."""
        text = expand(path, self.env)
        if text == "~" or text.startswith("~/"):
            home = self.env.get("HOME", "")
            if not home.startswith("/"):
                raise CachePathError("~ needs the build's HOME, and it has none")
            text = home + text[1:]
        elif text.startswith("~"):
            raise CachePathError("~NAME is another user's home, which builds do not have")
        if not text.startswith("/"):
            text = f"{self.workspace.source}/{text}"
        where = "/" + posixpath.normpath(text).lstrip("/")
        root = str(self.workspace.root)
        if not where.startswith(root + "/"):
            raise CachePathError(
                f"it is {where}, outside the build's workspace {root}: only paths under "
                "$SD_ROOT_DIR are cached here (in a container, a path of the image such as "
                "/root or /tmp is not)"
            )
        parts = where[len(root) + 1 :].split("/")
        if parts[0] in self.reserved:
            raise CachePathError(f"it is {where}, a folder of the launcher's own")
        self._targets[path] = where
        return parts

    def _parent(self, parts: list[str]) -> Any:
        return self.workspace.root.joinpath(*parts[:-1])

    # -- sd-setup-cache ---------------------------------------------------------------------

    def restore(self, log: Log, should_stop: ShouldStop) -> int:
        """Restore every cache path, pipeline then event then job; always 0."""
        return self._every_path("restored", self._restore_one, log, should_stop)

    def _restore_one(self, key: str, path: str, log: Log, should_stop: ShouldStop) -> None:
        try:
            parts = self.target(path)
        except CachePathError as exc:
            log(f"Skipping the {key} cache {path}: {exc}.")
            return
        started = self.clock()
        limit = self.spec.max_bytes
        with tempfile.TemporaryFile(prefix="sd-cache-") as archive:
            try:
                if self.api.fetch(key, path, archive, limit) is None:
                    log(f"No {key} cache {path} yet.")
                    return
                size = archive.tell()
                check_archive(archive, limit)
            except CacheTransferError as exc:
                log(f"Could not fetch the {key} cache {path}: {exc}.")
                return
            except ArchiveError as exc:
                log(f"Refused the {key} cache {path}: {exc}. Nothing of it was restored.")
                return
            try:
                with self.workspace.tree.directory(self._parent(parts), create=True) as parent:
                    files = unpack(archive, parent, parts[-1], should_stop)
            except Stopped:
                raise
            except (ArchiveError, OSError) as exc:
                log(f"Could not restore all of the {key} cache {path}: {_reason(exc)}.")
                return
        log(
            f"Restored the {key} cache {path} into {self._targets[path]}: {files} files, "
            f"{human_bytes(size)} compressed, in {self.clock() - started:.1f} s."
        )

    # -- sd-teardown-cache ------------------------------------------------------------------

    def save(self, log: Log, should_stop: ShouldStop) -> int:
        """Save every cache path this build may save; always 0."""
        return self._every_path("saved", self._save_one, log, should_stop)

    def _save_one(self, key: str, path: str, log: Log, should_stop: ShouldStop) -> None:
        if key not in self.spec.save:
            log(
                f"Not saving the {key} cache {path}: a pull request's build does not "
                f"change its pipeline's or its job's caches."
            )
            return
        try:
            parts = self.target(path)
        except CachePathError as exc:
            log(f"Skipping the {key} cache {path}: {exc}.")
            return
        started = self.clock()
        limit = self.spec.max_bytes
        where = self._targets[path]
        try:
            with self.workspace.tree.directory(self._parent(parts)) as parent:
                files = survey(parent, parts[-1], limit, should_stop)
                if files.outside_links:
                    log(
                        f"Left out {_count(files.outside_links, 'link')} that point outside "
                        f"{where}: {_some(files.outside_links)}."
                    )
                if files.special:
                    log(
                        f"Left out {_count(files.special, 'special file')} (FIFOs, sockets, "
                        f"devices): {_some(files.special)}."
                    )
                if self.api.digest(key, path) == files.digest:
                    log(f"The {key} cache {path} is unchanged: not sent again.")
                    return
                with tempfile.TemporaryFile(prefix="sd-cache-") as archive:
                    pack(parent, parts[-1], archive, limit, should_stop)
                    size = archive.tell()
                    self.api.store(key, path, archive, size, files.digest)
        except FileNotFoundError:
            log(f"Nothing to save for the {key} cache {path}: {where} does not exist.")
            return
        except Stopped:
            raise
        except ArchiveError as exc:
            log(f"Not saving the {key} cache {path}: {exc}.")
            return
        except CacheTransferError as exc:
            log(f"Could not save the {key} cache {path}: {exc}.")
            return
        except OSError as exc:
            log(f"Could not read the {key} cache {path}: {_reason(exc)}.")
            return
        log(
            f"Saved the {key} cache {path} from {where}: {files.files} files, "
            f"{human_bytes(files.bytes)} ({human_bytes(size)} compressed), "
            f"in {self.clock() - started:.1f} s."
        )

    def _every_path(
        self,
        done: str,
        one: Callable[[str, str, Log, ShouldStop], None],
        log: Log,
        should_stop: ShouldStop,
    ) -> int:
        """Run `one` on each cache path in order until the build is stopped; always 0."""
        for key, path in self._each():
            if should_stop():
                log(f"The build was stopped: no more caches are {done}.")
                break
            try:
                one(key, path, log, should_stop)
            except Stopped:
                log(f"The build was stopped while the {key} cache {path} was {done}.")
                break
        return 0

    def _each(self) -> list[tuple[str, str]]:
        return [(key, path) for key in KEYS for path in self.spec.paths.get(key, [])]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    return str(exc)


def _count(items: Sequence[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _some(items: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
