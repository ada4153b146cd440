from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scm.base import RepoRef, ScmError
from scm.local import HOOK_MARKER, HOOK_NOTIFY_SCRIPT, MAX_FILE_BYTES, LocalGitScm

SCM = LocalGitScm()


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's git config (hooksPath, signing, default branch) out of the tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Charles Babbage",
        "GIT_COMMITTER_EMAIL": "charles@example.com",
        **(env or {}),
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def commit(work: Path, files: dict[str, bytes], message: str, *, when: int = 1700000000) -> str:
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    git(work, "add", "-A")
    dates = {"GIT_AUTHOR_DATE": f"{when} +0200", "GIT_COMMITTER_DATE": f"{when} +0200"}
    git(work, "commit", "-q", "-m", message, env=dates)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A non-bare repository on branch main with one commit."""
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, {"screwdriver.yaml": b"jobs: {}\n"}, "First commit")
    return path


@pytest.fixture
def bare(tmp_path: Path, work: Path) -> Path:
    """A bare repository holding work's history on main."""
    path = tmp_path / "repo.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    git(work, "push", "-q", str(path), "main")
    return path


# -- parse_url ---------------------------------------------------------------------------------


def test_it_parses_a_file_url_with_a_branch(bare: Path) -> None:
    ref = SCM.parse_url(f"file://{bare}#main")
    assert ref == RepoRef(
        scm_context="local",
        scm_uri=f"local:{bare}:main",
        repo_path=str(bare),
        branch="main",
        name="repo",
        checkout_url=f"file://{bare}#main",
    )


def test_it_parses_a_plain_path_and_defaults_to_the_head_branch(bare: Path) -> None:
    ref = SCM.parse_url(f"{bare}/")
    assert (ref.branch, ref.repo_path, ref.checkout_url) == (
        "main",
        str(bare),
        f"file://{bare}#main",
    )


def test_it_gives_the_same_ref_for_both_url_forms(bare: Path) -> None:
    assert SCM.parse_url(f"file://{bare}#main") == SCM.parse_url(f"{bare}#main")


def test_it_parses_a_working_copy(work: Path) -> None:
    ref = SCM.parse_url(f"file://{work}")
    assert (ref.name, ref.branch, ref.repo_path) == ("work", "main", str(work))


def test_it_decodes_percent_escapes_in_file_urls(tmp_path: Path, work: Path) -> None:
    spaced = tmp_path / "my repo.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(spaced))
    ref = SCM.parse_url("file://" + str(spaced).replace(" ", "%20") + "#main")
    assert ref.repo_path == str(spaced)
    assert ref.checkout_url == "file://" + str(spaced).replace(" ", "%20") + "#main"
    assert SCM.parse_url(ref.checkout_url) == ref


def test_it_accepts_a_second_branch(work: Path, bare: Path) -> None:
    git(work, "push", "-q", str(bare), "main:feature/x")
    ref = SCM.parse_url(f"{bare}#feature/x")
    assert ref.scm_uri == f"local:{bare}:feature/x"


@pytest.mark.parametrize("url", ["repo.git#main", "file://repo.git#main", "./repo.git", ""])
def test_it_rejects_a_path_that_is_not_absolute(url: str) -> None:
    with pytest.raises(ScmError, match=r"absolute|not a local file URL"):
        SCM.parse_url(url)


def test_it_rejects_a_file_url_on_another_host(bare: Path) -> None:
    with pytest.raises(ScmError, match="not a local file URL"):
        SCM.parse_url(f"file://example.com{bare}#main")


def test_it_rejects_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(ScmError, match="not a git repository"):
        SCM.parse_url(str(tmp_path))


def test_it_rejects_a_folder_inside_a_repository(work: Path, bare: Path) -> None:
    (work / "sub").mkdir()
    for path in (work / "sub", bare / "refs"):
        with pytest.raises(ScmError, match="not a git repository"):
            SCM.parse_url(str(path))


def test_it_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ScmError, match="does not exist"):
        SCM.parse_url(f"{tmp_path}/nope.git#main")


def test_it_rejects_a_missing_branch(bare: Path) -> None:
    with pytest.raises(ScmError, match="Branch 'nope' does not exist"):
        SCM.parse_url(f"{bare}#nope")


@pytest.mark.parametrize(
    "branch",
    ["-rf", "a..b", "bad branch", "x~1", "main~1", "main^", "main@{1}", "a.lock"],
)
def test_it_rejects_an_invalid_branch_name(bare: Path, branch: str) -> None:
    with pytest.raises(ScmError, match="not a valid branch name"):
        SCM.parse_url(f"{bare}#{branch}")


@pytest.mark.parametrize(
    ("fragment", "root_dir"),
    [
        ("main:app", "app"),
        ("main:app/", "app"),
        ("main:services/api//", "services/api"),
        ("main:a:b", "a:b"),  # only the first ':' ends the branch
        ("main:dir with space/x", "dir with space/x"),
    ],
)
def test_it_parses_a_source_directory_after_the_branch(
    bare: Path, fragment: str, root_dir: str
) -> None:
    ref = SCM.parse_url(f"{bare}#{fragment}")
    assert ref == RepoRef(
        scm_context="local",
        scm_uri=f"local:{bare}:main:{root_dir}",
        repo_path=str(bare),
        branch="main",
        name="repo",
        checkout_url=f"file://{bare}#main:{root_dir}",
        root_dir=root_dir,
    )
    assert ref.repo_file("screwdriver.yaml") == f"{root_dir}/screwdriver.yaml"


def test_a_branch_with_slashes_keeps_them_before_the_source_directory(
    work: Path, bare: Path
) -> None:
    git(work, "push", "-q", str(bare), "main:feature/x")
    ref = SCM.parse_url(f"file://{bare}#feature/x:app/web")
    assert (ref.branch, ref.root_dir) == ("feature/x", "app/web")
    assert ref.scm_uri == f"local:{bare}:feature/x:app/web"


def test_without_a_branch_the_source_directory_is_on_the_default_branch(bare: Path) -> None:
    ref = SCM.parse_url(f"{bare}#:app")
    assert (ref.branch, ref.root_dir, ref.checkout_url) == (
        "main",
        "app",
        f"file://{bare}#main:app",
    )


@pytest.mark.parametrize(
    "root_dir",
    [
        "",
        "/",
        "/app",
        "..",
        "../x",
        "app/../..",
        "a/../b",
        "a//b",
        ".",
        "./app",
        "a/./b",
        "a\0b",
        "a\nb",
        "a\x7fb",
        "x" * 513,
    ],
)
def test_it_refuses_a_source_directory_outside_or_not_normal(bare: Path, root_dir: str) -> None:
    with pytest.raises(ScmError, match="source directory"):
        SCM.parse_url(f"{bare}#main:{root_dir}")


def test_a_refused_source_directory_is_named_before_git_runs(tmp_path: Path) -> None:
    # The folder is wrong whatever the repository: no git call tells what exists on the disk.
    with pytest.raises(ScmError, match="not a source directory inside the repository"):
        SCM.parse_url(f"{tmp_path}/nowhere.git#main:../etc")


def test_it_rejects_an_empty_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(empty))
    with pytest.raises(ScmError, match="Branch 'main' does not exist"):
        SCM.parse_url(str(empty))


# -- head_sha, read_file, commit_info ----------------------------------------------------------


def test_head_sha_follows_pushes(work: Path, bare: Path) -> None:
    ref = SCM.parse_url(str(bare))
    assert SCM.head_sha(ref) == git(work, "rev-parse", "HEAD")
    newer = commit(work, {"b.txt": b"b"}, "Second")
    git(work, "push", "-q", str(bare), "main")
    assert SCM.head_sha(ref) == newer


def test_read_file_returns_the_content_at_each_sha(work: Path, bare: Path) -> None:
    older = git(work, "rev-parse", "HEAD")
    newer = commit(work, {"screwdriver.yaml": b"jobs:\n  main: {}\n"}, "Second")
    git(work, "push", "-q", str(bare), "main")
    ref = SCM.parse_url(str(bare))
    assert SCM.read_file(ref, older, "screwdriver.yaml") == b"jobs: {}\n"
    assert SCM.read_file(ref, newer, "screwdriver.yaml") == b"jobs:\n  main: {}\n"
    assert SCM.read_file(ref, newer.upper(), "./screwdriver.yaml") == b"jobs:\n  main: {}\n"


def test_read_file_returns_none_for_a_missing_file(work: Path, bare: Path) -> None:
    older = git(work, "rev-parse", "HEAD")
    newer = commit(work, {"dir/x.yaml": b"x"}, "Second")
    git(work, "push", "-q", str(bare), "main")
    ref = SCM.parse_url(str(bare))
    assert SCM.read_file(ref, older, "dir/x.yaml") is None
    assert SCM.read_file(ref, newer, "dir/x.yaml") == b"x"
    assert SCM.read_file(ref, newer, "nope.yaml") is None
    assert SCM.read_file(ref, newer, "dir") is None  # a directory is not a file
    assert SCM.read_file(ref, newer, "x.yaml") is None  # no match by basename


def test_read_file_treats_pathspec_characters_literally(work: Path) -> None:
    sha = commit(work, {"a.yaml": b"a"}, "Second")
    ref = SCM.parse_url(str(work))
    assert SCM.read_file(ref, sha, "*.yaml") is None
    assert SCM.read_file(ref, sha, ":(glob)*.yaml") is None


def test_read_file_works_on_a_working_copy(work: Path) -> None:
    ref = SCM.parse_url(str(work))
    assert SCM.read_file(ref, SCM.head_sha(ref), "screwdriver.yaml") == b"jobs: {}\n"


def test_read_file_reads_a_file_at_the_size_limit(work: Path) -> None:
    sha = commit(work, {"big": b"x" * MAX_FILE_BYTES}, "Big")
    ref = SCM.parse_url(str(work))
    assert SCM.read_file(ref, sha, "big") == b"x" * MAX_FILE_BYTES


def test_read_file_rejects_a_file_over_the_size_limit(work: Path) -> None:
    sha = commit(work, {"big": b"x" * (MAX_FILE_BYTES + 1)}, "Big")
    ref = SCM.parse_url(str(work))
    with pytest.raises(ScmError, match="over the 524288 byte limit"):
        SCM.read_file(ref, sha, "big")


@pytest.mark.parametrize("sha", ["HEAD", "abc123", "--all", "g" * 40, "a" * 41])
def test_read_file_rejects_what_is_not_a_full_sha(bare: Path, sha: str) -> None:
    ref = SCM.parse_url(str(bare))
    with pytest.raises(ScmError, match="not a full commit sha"):
        SCM.read_file(ref, sha, "screwdriver.yaml")


def test_a_tag_tree_or_blob_name_is_not_taken_for_a_commit(work: Path) -> None:
    git(work, "tag", "-a", "-m", "release", "v1")
    ref = SCM.parse_url(str(work))
    tag, tree, blob = (
        git(work, "rev-parse", n) for n in ("v1", "HEAD^{tree}", "HEAD:screwdriver.yaml")
    )
    assert len({tag, tree, blob}) == 3
    for name in (tag, tree, blob):
        with pytest.raises(ScmError, match="is not in"):
            SCM.commit_info(ref, name)
    for name in (tree, blob):
        with pytest.raises(ScmError, match="is not in"):
            SCM.read_file(ref, name, "screwdriver.yaml")
    # Every sha that reaches read_file passed commit_info or head_sha first; a tag's own name
    # reads the commit it points at, as git itself would.
    assert SCM.read_file(ref, tag, "screwdriver.yaml") == b"jobs: {}\n"


def test_read_file_rejects_an_unknown_commit(bare: Path) -> None:
    ref = SCM.parse_url(str(bare))
    with pytest.raises(ScmError, match="is not in"):
        SCM.read_file(ref, "a" * 40, "screwdriver.yaml")


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b"])
def test_read_file_rejects_paths_outside_the_tree(bare: Path, path: str) -> None:
    ref = SCM.parse_url(str(bare))
    with pytest.raises(ScmError, match="not a file path inside the repository"):
        SCM.read_file(ref, SCM.head_sha(ref), path)


def test_commit_info_reports_the_commit(work: Path) -> None:
    sha = commit(work, {"a": b"a"}, "Fix the build\n\nLonger body with ünïcode.", when=1700000123)
    info = SCM.commit_info(SCM.parse_url(str(work)), sha)
    assert info.sha == sha
    assert info.message == "Fix the build\n\nLonger body with ünïcode."
    assert (info.author_name, info.author_email) == ("Ada Lovelace", "ada@example.com")
    assert info.committed_at == datetime.fromtimestamp(1700000123, tz=UTC)
    assert info.committed_at.tzinfo is UTC
    assert info.url == ""


# -- install_hook ------------------------------------------------------------------------------


def test_install_hook_writes_the_hook_and_a_private_config(bare: Path) -> None:
    ref = SCM.parse_url(str(bare))
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1:8000/hook", key=b"\x01\xff")
    hook = bare / "hooks" / "post-receive"
    config = bare / "hooks" / "screwdriver-hook.json"
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {
        "notify_url": "http://127.0.0.1:8000/hook",
        "key": "01ff",
        "repository": str(bare),
    }
    script = hook.read_text()
    assert script.startswith("#!/bin/sh\n")
    assert HOOK_MARKER in script
    assert str(HOOK_NOTIFY_SCRIPT) in script and str(config) in script
    assert script.rstrip().endswith("exit 0")


def test_install_hook_uses_the_git_dir_of_a_working_copy(work: Path) -> None:
    ref = SCM.parse_url(str(work))
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1/hook", key=b"k")
    assert (work / ".git" / "hooks" / "post-receive").is_file()
    assert not (work / "hooks").exists()


def test_install_hook_honours_core_hooks_path(bare: Path, tmp_path: Path) -> None:
    git(bare, "config", "core.hooksPath", str(tmp_path / "shared-hooks"))
    ref = SCM.parse_url(str(bare))
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1/hook", key=b"k")
    assert (tmp_path / "shared-hooks" / "post-receive").is_file()


def test_install_hook_leaves_a_foreign_hook_alone(bare: Path) -> None:
    hook = bare / "hooks" / "post-receive"
    hook.write_text("#!/bin/sh\necho deploy\n")
    ref = SCM.parse_url(str(bare))
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1/hook", key=b"k") is False
    assert hook.read_text() == "#!/bin/sh\necho deploy\n"
    assert not (bare / "hooks" / "screwdriver-hook.json").exists()


def test_install_hook_replaces_its_own_hook(bare: Path) -> None:
    ref = SCM.parse_url(str(bare))
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1/old", key=b"k")
    assert SCM.install_hook(ref, notify_url="http://127.0.0.1/new", key=b"k")
    config = json.loads((bare / "hooks" / "screwdriver-hook.json").read_text())
    assert config["notify_url"] == "http://127.0.0.1/new"


def test_install_hook_rejects_a_non_http_url(bare: Path) -> None:
    ref = SCM.parse_url(str(bare))
    with pytest.raises(ScmError, match="not an http"):
        SCM.install_hook(ref, notify_url="ftp://x/", key=b"k")


def test_a_stored_url_gives_the_ref_parse_url_gave_without_asking_git(
    work: Path, bare: Path
) -> None:
    for path in (bare, work):
        for fragment in ("main", "main:app", "main:services/api/"):
            parsed = SCM.parse_url(f"{path}#{fragment}")
            assert SCM.stored_ref(parsed.checkout_url) == parsed


def test_the_same_branch_in_two_folders_are_two_repositories_to_the_server(bare: Path) -> None:
    top, app, web = (SCM.parse_url(f"{bare}#main{x}") for x in ("", ":app", ":web"))
    assert len({top.scm_uri, app.scm_uri, web.scm_uri}) == 3
    assert SCM.parse_url(f"file://{bare}#main:app/").scm_uri == app.scm_uri


def test_reading_a_repository_that_has_gone_since_says_so(tmp_path: Path, bare: Path) -> None:
    ref = SCM.stored_ref(SCM.parse_url(str(bare)).checkout_url)
    bare.rename(tmp_path / "moved.git")
    with pytest.raises(ScmError, match="does not exist or is not a directory"):
        SCM.head_sha(ref)


def test_a_stored_repository_that_became_a_plain_folder_is_not_read_through_its_parent(
    work: Path,
) -> None:
    inner = work / "repos" / "p.git"
    inner.parent.mkdir()
    git(work.parent, "init", "-q", "--bare", "-b", "main", str(inner))
    git(work, "push", "-q", str(inner), "main")
    ref = SCM.stored_ref(SCM.parse_url(str(inner)).checkout_url)
    shutil.rmtree(inner)
    inner.mkdir()  # still a directory, now inside the working copy `work`
    with pytest.raises(ScmError):
        SCM.head_sha(ref)
    with pytest.raises(ScmError):
        SCM.commit_info(ref, git(work, "rev-parse", "HEAD"))


@pytest.mark.parametrize("branch", ["main~1", "-x", "a..b", "main@{1}"])
def test_a_stored_url_whose_branch_was_edited_into_revision_syntax_is_refused(
    bare: Path, branch: str
) -> None:
    with pytest.raises(ScmError, match="not a valid branch name"):
        SCM.stored_ref(f"file://{bare}#{branch}")
