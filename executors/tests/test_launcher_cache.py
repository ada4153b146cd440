"""The launcher's side of build caches: archives that keep modes and never follow links, hostile
archives refused before anything is written, where cache paths land, what is sent and when the
two internal steps run. The API is a fake HTTP server in a thread; builds/tests/test_caches.py
holds the real routes and executors/tests/test_cache_builds.py real builds."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from executors.launcher.cache import (
    CacheApi,
    CachePathError,
    Caches,
    CacheSpec,
)
from executors.launcher.cache_archive import (
    ArchiveError,
    check_archive,
    pack,
    survey,
    unpack,
)
from executors.launcher.environment import build_environment
from executors.launcher.logs import Masker
from executors.launcher.runner import InternalStep, Runner, Step
from executors.launcher.workspace import Workspace
from executors.tests.reporting import Collector

LIMIT = 1 << 20


def tree(root: Path) -> None:
    """A cached folder with what real ones hold: modes, an empty and a read-only folder, an
    inner link, a link outside, a FIFO."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "secret.txt").write_text("mine only\n")
    (root / "secret.txt").chmod(0o600)
    (root / "empty").mkdir()
    (root / "frozen").mkdir()
    (root / "frozen" / "kept.txt").write_text("kept\n")
    (root / "frozen" / "kept.txt").chmod(0o644)
    for folder in ("bin", "empty"):
        (root / folder).chmod(0o755)
    (root / "frozen").chmod(0o555)
    (root / "link-in").symlink_to("bin/tool")
    (root / "link-out").symlink_to("../../outside")
    (root / "abs-link").symlink_to("/etc/passwd")
    os.mkfifo(root / "pipe")
    os.utime(root / "secret.txt", (1_600_000_000, 1_600_000_000))


def listing(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry below `root`: kind, permission bits, and a file's text or a link's target."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            out[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            out[rel] = ("dir", stat.S_IMODE(info.st_mode), "")
        elif stat.S_ISREG(info.st_mode):
            out[rel] = ("file", stat.S_IMODE(info.st_mode), path.read_text())
    return out


def archive_of(parent: Path, name: str, limit: int = LIMIT) -> io.BytesIO:
    out = io.BytesIO()
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pack(fd, name, out, limit)
    finally:
        os.close(fd)
    return out


def restore(archive: io.BytesIO, parent: Path, name: str) -> int:
    check_archive(archive, LIMIT)
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return unpack(archive, fd, name)
    finally:
        os.close(fd)


def digest_of(parent: Path, name: str) -> str:
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return survey(fd, name, LIMIT).digest
    finally:
        os.close(fd)


@pytest.fixture(autouse=True)
def _writable(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Read-only folders made by a test must not stop pytest from removing them."""
    yield
    for folder in tmp_path.rglob("*"):
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)


def test_a_folder_comes_back_with_its_modes_times_and_inner_links_and_nothing_else(
    tmp_path: Path,
) -> None:
    tree(tmp_path / "a" / "cache")
    fd = os.open(tmp_path / "a", os.O_RDONLY | os.O_DIRECTORY)
    seen = survey(fd, "cache", LIMIT)
    os.close(fd)
    assert (seen.kind, seen.files) == ("dir", 3)
    assert sorted(seen.outside_links) == ["abs-link", "link-out"]
    assert seen.special == ["pipe"]

    files = restore(archive_of(tmp_path / "a", "cache"), tmp_path / "b", "cache")

    assert files == 3
    assert listing(tmp_path / "b" / "cache") == {
        "bin": ("dir", 0o755, ""),
        "bin/tool": ("file", 0o755, "#!/bin/sh\necho tool\n"),
        "empty": ("dir", 0o755, ""),
        "frozen": ("dir", 0o555, ""),
        "frozen/kept.txt": ("file", 0o644, "kept\n"),
        "link-in": ("link", 0, "bin/tool"),
        "secret.txt": ("file", 0o600, "mine only\n"),
    }
    assert (tmp_path / "b" / "cache" / "secret.txt").stat().st_mtime == 1_600_000_000
    assert digest_of(tmp_path / "b", "cache") == seen.digest


def test_the_digest_follows_contents_and_modes_not_times(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "f").write_text("one")
    first = digest_of(tmp_path, "c")
    os.utime(tmp_path / "c" / "f", (1, 1))
    assert digest_of(tmp_path, "c") == first
    (tmp_path / "c" / "f").chmod(0o700)
    moded = digest_of(tmp_path, "c")
    assert moded != first
    (tmp_path / "c" / "f").write_text("two")
    assert digest_of(tmp_path, "c") not in (first, moded)


def test_a_single_file_is_a_cache_too(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "versions").write_text("v1.0.0\n")
    restore(archive_of(tmp_path / "a", "versions"), tmp_path / "b", "versions")
    assert (tmp_path / "b" / "versions").read_text() == "v1.0.0\n"


def test_a_cached_path_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    (tmp_path / "cache").symlink_to("real")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ArchiveError, match="symbolic link"):
            survey(fd, "cache", LIMIT)
        with pytest.raises(ArchiveError, match="symbolic link"):
            pack(fd, "cache", io.BytesIO(), LIMIT)
    finally:
        os.close(fd)


def test_files_past_the_cap_are_not_packed_or_unpacked(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "big").write_bytes(os.urandom(2000))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ArchiveError, match="more than 1000 B"):
            survey(fd, "c", 1000)
        with pytest.raises(ArchiveError, match="archive is larger than 1000 B"):
            pack(fd, "c", io.BytesIO(), 1000)
    finally:
        os.close(fd)
    with pytest.raises(ArchiveError, match="files hold more than 1000 B"):
        check_archive(archive_of(tmp_path, "c"), 1000)


# -- hostile archives -----------------------------------------------------------------------


def hostile(*members: tuple[str, str, str]) -> io.BytesIO:
    """A tar.gz of (name, kind, target-or-text) members after a root folder `.`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = {
                "link": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "dev": tarfile.CHRTYPE,
                "dir": tarfile.DIRTYPE,
            }[kind]
            info.linkname = data
            tar.addfile(info)
    return out


@pytest.mark.parametrize(
    ("members", "said"),
    [
        ([("../escaped", "file", "x")], "'../escaped', which would land outside"),
        ([("/tmp/escaped", "file", "x")], "'/tmp/escaped', which would land outside"),
        ([("a/../../escaped", "file", "x")], "would land outside"),
        ([("l", "link", "../../outside")], "the link 'l' to '../../outside'"),
        ([("l", "link", "/etc")], "the link 'l' to '/etc'"),
        ([("d", "dir", ""), ("d/l", "link", "../..")], "the link 'd/l' to '../..'"),
        ([("l", "link", "sub"), ("l/x", "file", "x")], "'l/x', which lies below one of its links"),
        ([("h", "hard", "/etc/passwd")], "'h', which is not a file, folder or link"),
        ([("p", "fifo", "")], "'p', which is not a file, folder or link"),
        ([("null", "dev", "")], "'null', which is not a file, folder or link"),
    ],
)
def test_an_archive_that_could_write_outside_the_cached_path_is_refused(
    tmp_path: Path, members: list[tuple[str, str, str]], said: str
) -> None:
    with pytest.raises(ArchiveError) as refused:
        check_archive(hostile(("fine.txt", "file", "ok"), *members), LIMIT)
    assert said in str(refused.value)


def test_an_archive_whose_first_member_is_not_the_cached_path_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("x")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match="first member is 'x'"):
        check_archive(out, LIMIT)
    with pytest.raises(ArchiveError, match=r"not a readable tar\.gz"):
        check_archive(io.BytesIO(b"not gzip at all"), LIMIT)


def test_unpacking_replaces_links_the_build_left_in_the_way_and_never_follows_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "src" / "c" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "c" / "sub" / "f.txt").write_text("cached\n")
    (tmp_path / "src" / "c" / "top.txt").write_text("top\n")
    archive = archive_of(tmp_path / "src", "c")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "top.txt").write_text("host file\n")
    target = tmp_path / "dst" / "c"
    target.mkdir(parents=True)
    (target / "sub").symlink_to(outside)  # a folder of the cache is a link out
    (target / "top.txt").symlink_to(outside / "top.txt")  # so is one of its files

    restore(archive, tmp_path / "dst", "c")

    assert (outside / "top.txt").read_text() == "host file\n"
    assert sorted(p.name for p in outside.iterdir()) == ["top.txt"]
    assert (
        not (target / "sub").is_symlink() and (target / "sub" / "f.txt").read_text() == "cached\n"
    )
    assert not (target / "top.txt").is_symlink()
    assert (target / "top.txt").read_text() == "top\n"


# -- where cache paths land -----------------------------------------------------------------


def caches_for(tmp_path: Path, home: str) -> Caches:
    workspace = Workspace(tmp_path / "ws", "repo", "app")
    env = {**workspace.variables("token"), "HOME": home, "CACHE_NAME": "deps"}
    spec = CacheSpec.of({"pipeline": ["x"], "save": ["pipeline"], "maxBytes": 10})
    assert spec is not None
    return Caches(spec, CacheApi("http://127.0.0.1:9/v4", "token", 1), workspace, env)


def test_cache_paths_land_in_the_workspace_as_screwdriver_reads_them(tmp_path: Path) -> None:
    caches = caches_for(tmp_path, str(tmp_path / "ws" / "home"))
    assert caches.target("node_modules") == ["src", "repo", "app", "node_modules"]
    assert caches.target("$SD_SOURCE_DIR/${CACHE_NAME}") == ["src", "repo", "app", "deps"]
    assert caches.target("~/.gradle") == ["home", ".gradle"]
    assert caches.target("../shared/") == ["src", "repo", "shared"]
    assert caches.target(f"{tmp_path}/ws/artifacts/x") == ["artifacts", "x"]


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/tmp/test", "outside the build's workspace"),
        ("~/.m2", "outside the build's workspace"),
        ("../../../../etc", "outside the build's workspace"),
        ("$SD_ROOT_DIR", "outside the build's workspace"),
        ("$SD_ROOT_DIR/.launcher", "a folder of the launcher's own"),
        ("$SD_ROOT_DIR/.sd-agent/x", "a folder of the launcher's own"),
        ("~root/x", "another user's home"),
    ],
)
def test_paths_the_launcher_cannot_reach_safely_are_refused(
    tmp_path: Path, path: str, said: str
) -> None:
    caches = caches_for(tmp_path, "/root")  # a container's HOME: not in the workspace
    with pytest.raises(CachePathError, match=said):
        caches.target(path)


def test_a_spec_without_paths_caches_nothing() -> None:
    assert CacheSpec.of(None) is None
    assert CacheSpec.of({"pipeline": [], "save": []}) is None
    spec = CacheSpec.of({"event": ["a", 3], "save": ["event", "bogus"], "maxBytes": "x"})
    assert spec == CacheSpec({"event": ["a"]}, frozenset({"event"}), 5 * 1024**3)


# -- when the internal steps run ------------------------------------------------------------


def recorder(name: str, seen: list[str]) -> InternalStep:
    def run(log, should_stop):  # type: ignore[no-untyped-def]
        seen.append(name)
        log(f"{name} ran")
        return 0

    return InternalStep(name, run)


def test_restoring_runs_before_the_steps_and_saving_after_a_successful_build(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    runner, out = make_runner(
        tmp_path,
        before_steps=[recorder("sd-setup-cache", seen)],
        after_success=[recorder("sd-teardown-cache", seen)],
    )
    result = runner.run(
        [Step("build", "echo built > $SD_ROOT_DIR/made"), Step("teardown-x", "true")]
    )
    assert result.status == "SUCCESS"
    assert [e[1] for e in out.events if e[0] == "start"] == [
        "sd-setup-cache",
        "build",
        "teardown-x",
        "sd-teardown-cache",
    ]
    assert out.text("sd-teardown-cache") == ["sd-teardown-cache ran"]


def test_a_failed_build_saves_no_cache(tmp_path: Path) -> None:
    seen: list[str] = []
    runner, out = make_runner(
        tmp_path,
        before_steps=[recorder("sd-setup-cache", seen)],
        after_success=[recorder("sd-teardown-cache", seen)],
    )
    result = runner.run([Step("build", "exit 3"), Step("teardown-x", "true")])
    assert result.status == "FAILURE"
    assert seen == ["sd-setup-cache"]
    assert ("start", "sd-teardown-cache", None) not in out.events


def make_runner(tmp_path: Path, **kwargs: Any) -> tuple[Runner, Collector]:
    workspace = Workspace(tmp_path / "ws", "repo")
    workspace.prepare({})
    env = build_environment(
        base={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        launcher_vars=workspace.variables("build-token"),
        bin_dir=workspace.bin,
        job_environment=[],
        secrets={},
    )
    reporter = Collector()
    runner = Runner(
        workspace=workspace, env=env, reporter=reporter, masker=Masker(["build-token"]), **kwargs
    )
    return runner, reporter


# -- restoring and saving through the API (a fake one) --------------------------------------


@dataclass
class FakeApi:
    """The cache routes as a launcher meets them: archives by (scope, name), and what came in."""

    archives: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    puts: list[tuple[str, str, str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _key(self) -> tuple[str, str]:
            *_, scope, name = self.path.split("/")
            return scope, unquote(name)

        def do_GET(self) -> None:
            found = fake.archives.get(self._key())
            if found is None:
                self.send_response(404)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            data, digest = found
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Cache-Digest", digest)
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        do_HEAD = do_GET

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            digest = self.headers["X-Cache-Digest"]
            fake.archives[self._key()] = (data, digest)
            fake.puts.append((*self._key(), digest, self.headers["Authorization"]))
            self.send_response(202)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v4"
    yield fake
    server.shutdown()
    server.server_close()


def build_caches(tmp_path: Path, api: FakeApi, spec: dict[str, Any]) -> tuple[Caches, Workspace]:
    workspace = Workspace(tmp_path / "ws", "repo")
    workspace.prepare({})
    env = {**workspace.variables("token"), "HOME": str(workspace.root / "home")}
    parsed = CacheSpec.of(spec)
    assert parsed is not None
    return Caches(parsed, CacheApi(api.url, "token", 7, backoff=0.01), workspace, env), workspace


def never() -> bool:
    return False


def test_a_saved_cache_is_sent_once_and_restored_in_the_next_workspace(
    tmp_path: Path, api: FakeApi
) -> None:
    spec = {"pipeline": ["~/.warm"], "save": ["pipeline"], "maxBytes": LIMIT}
    caches, workspace = build_caches(tmp_path / "one", api, spec)
    (workspace.root / "home" / ".warm").mkdir(parents=True)
    (workspace.root / "home" / ".warm" / "value").write_text("from build one\n")
    lines: list[str] = []
    assert caches.save(lines.append, never) == 0
    (sent,) = api.puts
    assert sent[:2] == ("pipeline", "~/.warm") and sent[3] == "Bearer token"
    assert lines[-1].startswith("Saved the pipeline cache ~/.warm from ")

    lines.clear()
    caches.save(lines.append, never)
    assert len(api.puts) == 1
    assert lines == ["The pipeline cache ~/.warm is unchanged: not sent again."]

    later, later_ws = build_caches(tmp_path / "two", api, spec)
    lines.clear()
    assert later.restore(lines.append, never) == 0
    assert (later_ws.root / "home" / ".warm" / "value").read_text() == "from build one\n"
    assert lines[0].startswith("Restored the pipeline cache ~/.warm into ")


def test_a_missing_cache_and_a_path_out_of_reach_are_said_and_skipped(
    tmp_path: Path, api: FakeApi
) -> None:
    spec = {"event": ["deps", "/tmp/test"], "save": ["event"], "maxBytes": LIMIT}
    caches, _workspace = build_caches(tmp_path, api, spec)
    lines: list[str] = []
    caches.restore(lines.append, never)
    assert lines[0] == "No event cache deps yet."
    assert lines[1].startswith("Skipping the event cache /tmp/test: it is /tmp/test, outside")
    lines.clear()
    caches.save(lines.append, never)
    assert lines[0].startswith("Nothing to save for the event cache deps: ")
    assert api.puts == []


def test_a_pull_requests_build_sends_only_its_events_caches(tmp_path: Path, api: FakeApi) -> None:
    spec = {"pipeline": ["shared"], "event": ["mine"], "save": ["event"], "maxBytes": LIMIT}
    caches, workspace = build_caches(tmp_path, api, spec)
    for name in ("shared", "mine"):
        (workspace.source / name).mkdir(parents=True)
        (workspace.source / name / "f").write_text(name)
    lines: list[str] = []
    caches.save(lines.append, never)
    assert [(scope, name) for scope, name, *_ in api.puts] == [("event", "mine")]
    assert lines[0] == (
        "Not saving the pipeline cache shared: a pull request's build does not change its "
        "pipeline's or its job's caches."
    )


def test_a_cache_past_the_cap_is_not_sent_and_the_log_says_why(
    tmp_path: Path, api: FakeApi
) -> None:
    spec = {"job": ["out"], "save": ["job"], "maxBytes": 1024}
    caches, workspace = build_caches(tmp_path, api, spec)
    (workspace.source / "out").mkdir(parents=True)
    (workspace.source / "out" / "big").write_bytes(b"x" * 2048)
    lines: list[str] = []
    caches.save(lines.append, never)
    assert api.puts == []
    assert lines == [
        "Not saving the job cache out: its files hold more than 1.0 KiB, the most a cache "
        "may hold (SD_CACHE_MAX_BYTES)."
    ]


@pytest.mark.parametrize(
    "bad",
    [
        ("../../../escaped", "file", "pwned"),
        ("l", "link", "../../../.."),
        ("h", "hard", "/etc/passwd"),
    ],
)
def test_a_hostile_archive_from_the_api_writes_nothing_at_all(
    tmp_path: Path, api: FakeApi, bad: tuple[str, str, str]
) -> None:
    archive = hostile(("fine.txt", "file", "ok"), bad).getvalue()
    api.archives[("pipeline", "c")] = (archive, hashlib.sha256(archive).hexdigest())
    caches, workspace = build_caches(
        tmp_path, api, {"pipeline": ["c"], "save": [], "maxBytes": LIMIT}
    )
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    lines: list[str] = []
    caches.restore(lines.append, never)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not (workspace.source / "c").exists()
    assert lines[0].startswith("Refused the pipeline cache c: it holds ")
    assert lines[0].endswith("Nothing of it was restored.")
