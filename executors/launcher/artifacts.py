"""sd-teardown-artifacts: publish $SD_ARTIFACTS_DIR to the API once the steps are over.

As Screwdriver's launcher and artifact bookend do, the launcher first writes `steps.json` (the
build's steps, with their codes and times) and `environment.json` (the build's environment,
secrets and the token as `****`) into the folder, then `manifest.txt` (`./path` a line, every
file it publishes), and uploads every regular file: one PUT each, or one zip that the server
expands, with SD_ZIP_ARTIFACTS=true or for a small folder. docs/artifacts.md has the protocol.

The folder is the build's: its steps may have left a link to any file of the machine there
(a container's root to the host's /etc/shadow, a local build to the server's data). So it is
walked from a handle on the workspace, every entry opened without following links: a link is
skipped with a line in the log, never read. Files are streamed from disk, never read whole.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .api import ApiClient, ApiError, BodyChanged, ConflictError
from .workspace import Workspace

ARTIFACTS_STEP = "sd-teardown-artifacts"
MANIFEST = "manifest.txt"
STEPS_FILE = "steps.json"
ENVIRONMENT_FILE = "environment.json"
ZIP_FLAG = "SD_ZIP_ARTIFACTS"
# As many files as the server takes in one zip; a folder holding more is refused past this.
MAX_FILES = 100_000
# Files uploaded side by side: each upload is a round trip and a small transaction, and a
# build's artifacts step always has at least three files (steps.json, environment.json and
# manifest.txt), the last thing before its final status.
UPLOADS_AT_ONCE = 4
# A folder this small goes up as one zip even when SD_ZIP_ARTIFACTS does not ask for it: one
# request and one transaction on the server instead of one of each a file. If the server
# refuses the zip, the files go one by one, as they would have.
SMALL_FOLDER_FILES = 32
SMALL_FOLDER_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_PATH_BYTES = 1024
MASK = "****"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_BYTES = 1024 * 1024
_ZIP64_FROM = (1 << 31) - 1
# 2107-12-29, days short of the last date a zip entry can hold, whatever the time zone.
_ZIP_CLOCK_ENDS = 4_354_560_000

Log = Callable[[str], None]


@dataclass(frozen=True)
class Caps:
    """What the server takes: per file and per build, in bytes (from the launch spec)."""

    max_file_bytes: int
    max_build_bytes: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Caps:
        return cls(int(spec["maxFileBytes"]), int(spec["maxBuildBytes"]))


@dataclass(frozen=True)
class Found:
    """A regular file of the folder: its path below it (POSIX) and its size."""

    path: str
    size: int


def size_text(size: int) -> str:
    """`52428800 bytes (50.0 MiB)`: exact, and readable."""
    if size < 1024:
        return f"{size} bytes"
    units = ["KiB", "MiB", "GiB", "TiB"]
    scaled = size / 1024
    while scaled >= 1024 and len(units) > 1:
        scaled /= 1024
        units.pop(0)
    return f"{size} bytes ({scaled:.1f} {units[0]})"


def refusal(path: str) -> str | None:
    """Why `path` cannot name an artifact on the server, or None."""
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        return "its name holds a control character or a backslash"
    if len(encoded) > MAX_PATH_BYTES:
        return f"its path is longer than {MAX_PATH_BYTES} bytes"
    return None


class _TooMany(Exception):
    pass


def find_files(dir_fd: int, log: Log) -> tuple[list[Found], int]:
    """The regular files below the directory `dir_fd`, in path order, never through a link;
    and how many entries could not be published (each said in `log`)."""
    found: list[Found] = []
    problems = 0

    def walk(fd: int, prefix: str, depth: int) -> None:
        nonlocal problems
        for name in sorted(os.listdir(fd)):
            path = prefix + name
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                log(f"{path}: not published: {exc.strerror}.")
                problems += 1
                continue
            if stat.S_ISLNK(info.st_mode):
                log(f"{path}: skipped: a symbolic link is never followed.")
            elif stat.S_ISDIR(info.st_mode):
                if depth >= MAX_DEPTH:
                    log(f"{path}: not published: folders nest deeper than {MAX_DEPTH}.")
                    problems += 1
                    continue
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    log(f"{path}: not published: {exc.strerror}.")
                    problems += 1
                    continue
                try:
                    walk(child, path + "/", depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                if len(found) == MAX_FILES:
                    raise _TooMany
                found.append(Found(path, info.st_size))
            else:
                log(f"{path}: skipped: not a regular file.")

    try:
        walk(dir_fd, "", 0)
    except _TooMany:
        log(f"The folder holds more than {MAX_FILES} files: only the first are published.")
        problems += 1
    return found, problems


def steps_report(
    commands: Sequence[tuple[str, str]], times: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """steps.json: each step's name and command, with its code, start and end as `times` has
    them (null for a step that did not run, or has not ended)."""
    return [
        {
            "name": name,
            "command": command,
            "code": times.get(name, {}).get("code"),
            "startTime": times.get(name, {}).get("startTime"),
            "endTime": times.get(name, {}).get("endTime"),
        }
        for name, command in commands
    ]


def masked_environment(
    names: Sequence[str], env: Mapping[str, str], hidden: set[str], mask: Callable[[str], str]
) -> list[dict[str, str]]:
    """Screwdriver's environment.json: `[{NAME: value}, ...]` in order, the values of `hidden`
    names (secrets, the token) replaced by `****` and other values masked with `mask`."""
    out: list[dict[str, str]] = []
    for name in dict.fromkeys(names):
        if name in env:
            out.append({name: MASK if name in hidden else mask(env[name])})
    return out


class Publisher:
    """Writes the reports into the artifacts folder and uploads the folder to the API."""

    def __init__(
        self,
        *,
        client: ApiClient,
        build_id: int,
        caps: Caps,
        workspace: Workspace,
        environment: list[dict[str, str]],
        zip_files: bool,
        patience: Callable[[], float],
        one_zip_up_to: tuple[int, int] = (SMALL_FOLDER_FILES, SMALL_FOLDER_BYTES),
    ) -> None:
        self.client = client
        self.build_id = build_id
        self.caps = caps
        self.workspace = workspace
        self.environment = environment
        self.zip_files = zip_files
        self.patience = patience
        self.one_zip_up_to = one_zip_up_to
        self.log: Log = lambda text: None

    def publish(
        self, steps: list[dict[str, Any]], log: Log, should_stop: Callable[[], bool]
    ) -> int:
        """Publish the folder; the step's exit code: 0 when every file was published."""
        self.log = log
        tree, folder = self.workspace.tree, self.workspace.artifacts
        try:
            with tree.directory(folder, create=True):
                pass
        except (OSError, ValueError) as exc:
            log(f"$SD_ARTIFACTS_DIR cannot be opened without following a link ({exc}).")
            log("Nothing was published.")
            return 1
        problems = 0
        for name, report in ((STEPS_FILE, steps), (ENVIRONMENT_FILE, self.environment)):
            text = json.dumps(report, indent=4, ensure_ascii=False) + "\n"
            try:
                tree.write(folder / name, text.encode("utf-8", "surrogateescape"), 0o644)
            except OSError as exc:
                log(f"{name}: could not be written: {exc.strerror}.")
                problems += 1
        with tree.directory(folder) as folder_fd:
            found, skipped = find_files(folder_fd, log)
        problems += skipped
        # The launcher's reports first, so that a build over its cap still publishes them.
        first = {STEPS_FILE, ENVIRONMENT_FILE}
        found = sorted(
            (f for f in found if f.path != MANIFEST), key=lambda f: (f.path not in first, f.path)
        )
        chosen, refused = self._within_caps(found, log)
        problems += refused
        manifest = "".join(f"./{p}\n" for p in sorted([*(f.path for f in chosen), MANIFEST]))
        try:
            tree.write(folder / MANIFEST, manifest.encode("utf-8"), 0o644)
        except OSError as exc:
            log(f"{MANIFEST}: could not be written: {exc.strerror}.")
            problems += 1
        else:
            more, refused = self._within_caps(
                [Found(MANIFEST, len(manifest.encode()))], log, sum(f.size for f in chosen)
            )
            chosen, problems = more + chosen, problems + refused
        if should_stop():
            log("The build was stopped or is out of time: nothing was published.")
            return 1
        if self.zip_files:
            sent, failed = self._upload_zip(chosen, log)
        elif self._small(chosen):
            sent, failed = self._upload_small(chosen, log, should_stop)
        else:
            sent, failed = self._upload_files(chosen, log, should_stop)
        problems += failed
        how = " in one zip" if self.zip_files else ""
        log(f"Published {len(sent)} files, {size_text(sum(f.size for f in sent))}{how}.")
        if problems:
            log(f"{problems} file(s) of $SD_ARTIFACTS_DIR were not published: see above.")
        return 1 if problems else 0

    def _small(self, files: list[Found]) -> bool:
        most_files, most_bytes = self.one_zip_up_to
        return len(files) <= most_files and sum(f.size for f in files) <= most_bytes

    def _within_caps(self, files: list[Found], log: Log, total: int = 0) -> tuple[list[Found], int]:
        chosen: list[Found] = []
        refused = 0
        for found in files:
            why = refusal(found.path)
            if why is None and found.size > self.caps.max_file_bytes:
                why = (
                    f"{size_text(found.size)} is over the cap of "
                    f"{size_text(self.caps.max_file_bytes)} per file (SD_ARTIFACTS_MAX_FILE_BYTES)"
                )
            elif why is None and total + found.size > self.caps.max_build_bytes:
                why = (
                    f"with it the build's artifacts would pass the cap of "
                    f"{size_text(self.caps.max_build_bytes)} per build "
                    "(SD_ARTIFACTS_MAX_BUILD_BYTES)"
                )
            if why is not None:
                log(f"{found.path}: not published: {why}.")
                refused += 1
                continue
            chosen.append(found)
            total += found.size
        return chosen, refused

    def _open(self, found: Found) -> int:
        """The file, opened without following links, if it still has the size it was found
        with (no build process runs any more; a change means something else is at work)."""
        fd = self.workspace.tree.open(
            self.workspace.artifacts / found.path, os.O_RDONLY, kind=stat.S_IFREG
        )
        if os.fstat(fd).st_size != found.size:
            os.close(fd)
            raise BodyChanged("its size changed while it was published")
        return fd

    def _upload_files(
        self, files: list[Found], log: Log, should_stop: Callable[[], bool]
    ) -> tuple[list[Found], int]:
        """Upload `files`, up to UPLOADS_AT_ONCE at a time, and say what became of each in
        their order. The server checks each against the build's cap under the build's lock,
        and these were chosen within it, so the order they land in changes nothing."""
        sent: list[Found] = []
        # The step's log is written here only, or under this lock (a resend's note).
        lock = threading.Lock()

        def locked(text: str) -> None:
            with lock:
                log(text)

        def upload(found: Found) -> BaseException | None:
            try:
                self._upload_file(found, locked)
            except (OSError, ValueError, BodyChanged, ApiError) as exc:
                return exc
            return None

        with ThreadPoolExecutor(UPLOADS_AT_ONCE, thread_name_prefix="sd-upload") as pool:
            running: deque[tuple[Found, Future[BaseException | None]]] = deque()
            queued = deque(files)
            while queued or running:
                while queued and len(running) < UPLOADS_AT_ONCE:
                    if should_stop():
                        locked(
                            "The build was stopped or is out of time: "
                            f"{len(queued)} file(s) not published."
                        )
                        queued.clear()
                        break
                    found = queued.popleft()
                    running.append((found, pool.submit(upload, found)))
                if not running:
                    break
                found, future = running.popleft()
                exc = future.result()
                if exc is None:
                    sent.append(found)
                elif not isinstance(exc, ApiError):
                    locked(f"{found.path}: not published: {_reason(exc)}.")
                else:
                    locked(f"{found.path}: not published: {_api_reason(exc)}")
                    if isinstance(exc, ConflictError) or not exc.permanent:
                        # The build has ended, or the API stayed out of reach: no use going
                        # on. The uploads already on their way end as they end.
                        ended = [(f, pending.result()) for f, pending in running]
                        sent += [f for f, error in ended if error is None]
                        failed = sum(error is not None for _f, error in ended)
                        locked(f"{failed + len(queued)} more file(s) not published.")
                        running.clear()
                        queued.clear()
        return sent, len(files) - len(sent)

    def _upload_file(self, found: Found, log: Log) -> None:
        url = f"/builds/{self.build_id}/artifacts/{quote(found.path, safe='/')}"
        fd = self._open(found)
        try:
            self.client.deliver_file(
                url, fd, found.size, within=self.patience(), on_retry=_said(log, found.path)
            )
        finally:
            os.close(fd)

    def _upload_zip(self, files: list[Found], log: Log) -> tuple[list[Found], int]:
        try:
            return self._send_zip(files, log, say=True)
        except ApiError as exc:
            log(f"The zip was not published: {_api_reason(exc)}")
        except (OSError, BodyChanged) as exc:
            log(f"The zip was not published: {_reason(exc)}.")
        return [], len(files)

    def _upload_small(
        self, files: list[Found], log: Log, should_stop: Callable[[], bool]
    ) -> tuple[list[Found], int]:
        """A few small files in one zip; one by one if the server refused it (the build ended,
        or the API stayed out of reach: then nothing more is tried, as for single files)."""
        try:
            return self._send_zip(files, log, say=False)
        except ApiError as exc:
            if isinstance(exc, ConflictError) or not exc.permanent:
                log(f"Nothing was published: {_api_reason(exc)}")
                return [], len(files)
        except Exception as exc:
            # The zip could not be made: each file on its own, as without it.
            # The launcher's own log (stderr), not the step's: the files' own lines say enough.
            sys.stderr.write(f"launcher: the artifacts' zip could not be made: {exc!r}\n")
        return self._upload_files(files, log, should_stop)

    def _send_zip(self, files: list[Found], log: Log, *, say: bool) -> tuple[list[Found], int]:
        """Zip `files` and upload the zip; what was sent, and how many were not."""
        tree = self.workspace.tree
        path = self.workspace.state / "artifacts.zip"
        fd = tree.create(path)
        try:
            zipped, failed = self._zip(files, fd, log)
            size = os.fstat(fd).st_size
            if say:
                log(f"Uploading {len(zipped)} files as one zip of {size_text(size)}.")
            answer = self.client.deliver_file(
                f"/builds/{self.build_id}/artifacts.zip",
                fd,
                size,
                content_type="application/zip",
                within=self.patience(),
                on_retry=_said(log, "the zip" if say else "the artifacts"),
            )
        finally:
            os.close(fd)
            tree.unlink(path)
        expanded = answer.get("files") if isinstance(answer, dict) else None
        if expanded != len(zipped):
            log(f"The server expanded {expanded} files of the {len(zipped)} zipped.")
            failed += 1
        return zipped, failed

    def _zip(self, files: list[Found], fd: int, log: Log) -> tuple[list[Found], int]:
        zipped: list[Found] = []
        failed = 0
        with (
            os.fdopen(os.dup(fd), "w+b") as raw,
            zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
        ):
            for found in files:
                try:
                    source = self._open(found)
                except (OSError, ValueError, BodyChanged) as exc:
                    log(f"{found.path}: not published: {_reason(exc)}.")
                    failed += 1
                    continue
                # A file that ends early leaves half an entry: the whole zip is given up.
                try:
                    info = zipfile.ZipInfo(found.path, _zip_time(os.fstat(source).st_mtime))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    info.file_size = found.size
                    with archive.open(info, "w", force_zip64=found.size >= _ZIP64_FROM) as out:
                        _copy(source, out, found.size)
                finally:
                    os.close(source)
                zipped.append(found)
        return zipped, failed


def _copy(source: int, out: Any, size: int) -> None:
    left = size
    while left > 0:
        chunk = os.read(source, min(_COPY_BYTES, left))
        if not chunk:
            raise BodyChanged("the file ended before its size")
        out.write(chunk)
        left -= len(chunk)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    # A zip's clock runs from 1980 to 2107: a file dated outside it (a step may touch any
    # date) gets the nearest end, never an error that would publish nothing.
    try:
        stamp = time.localtime(min(max(mtime, 315_532_800 + 86_400), _ZIP_CLOCK_ENDS))
    except (OverflowError, OSError, ValueError):
        return (1980, 1, 1, 0, 0, 0)
    return (stamp.tm_year, stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _api_reason(exc: ApiError) -> str:
    """The server's own sentence when it gave one, else what went wrong."""
    try:
        message = json.loads(exc.body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"{exc}."


def _said(log: Log, what: str) -> Callable[[ApiError], None]:
    said = False

    def note(exc: ApiError) -> None:
        nonlocal said
        if not said:
            log(f"{what}: the API did not take it ({exc}); resending until it does.")
            said = True

    return note


def zip_requested(env: Mapping[str, str]) -> bool:
    """SD_ZIP_ARTIFACTS=true in the build's environment, as Screwdriver reads it."""
    return env.get(ZIP_FLAG, "").strip().lower() == "true"
