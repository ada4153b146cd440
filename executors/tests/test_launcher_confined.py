"""The launcher's file access in a workspace a build may fill with links to the host's files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from executors.launcher import meta
from executors.launcher.confined import Confined


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A folder of 'the host', outside the workspace."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "secret.json").write_text('{"stolen": "host-value"}')
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Confined:
    (tmp_path / "ws" / ".launcher").mkdir(parents=True)
    return Confined(tmp_path / "ws")


def test_a_write_replaces_a_link_and_leaves_its_target_alone(tree: Confined, host: Path) -> None:
    script = tree.root / ".launcher" / "cmd-2.sh"
    script.symlink_to(host / "secret.json")

    tree.write(script, b"echo step 2\n")

    assert (host / "secret.json").read_text() == '{"stolen": "host-value"}'
    assert not script.is_symlink()
    assert script.read_bytes() == b"echo step 2\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o600


def test_a_link_anywhere_on_the_way_is_refused(tree: Confined, host: Path) -> None:
    (tree.root / "meta").symlink_to(host)

    with pytest.raises(OSError):
        tree.write(tree.root / "meta" / "new.json", b"{}")
    with pytest.raises(OSError):
        tree.read(tree.root / "meta" / "secret.json")
    assert sorted(p.name for p in host.iterdir()) == ["secret.json"]


def test_reads_take_regular_files_only_and_no_more_than_the_cap(tree: Confined, host: Path) -> None:
    state = tree.root / ".launcher"
    (state / "pwd-1").symlink_to(host / "secret.json")
    os.mkfifo(state / "pwd-2")
    (state / "pwd-3").write_bytes(b"x" * 11)

    with pytest.raises(OSError):
        tree.read(state / "pwd-1")
    with pytest.raises(OSError):
        tree.read(state / "pwd-2")  # refused at once, never blocking on the FIFO
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        tree.read(state / "pwd-3", limit=10)
    assert not tree.is_file(state / "pwd-1")
    assert tree.is_file(state / "pwd-3")


def test_a_fifo_is_opened_only_if_it_still_is_one(tree: Confined, host: Path) -> None:
    state = tree.root / ".launcher"
    os.mkfifo(state / "ctl")
    (state / "res").symlink_to(host / "secret.json")
    fd = tree.open(state / "ctl", os.O_RDWR, kind=stat.S_IFIFO)
    os.close(fd)

    with pytest.raises(OSError):
        tree.open(state / "res", os.O_WRONLY, kind=stat.S_IFIFO)
    (state / "res").unlink()
    (state / "res").write_text("regular")
    with pytest.raises(OSError):
        tree.open(state / "res", os.O_WRONLY, kind=stat.S_IFIFO)


def test_meta_in_a_directory_handle_never_follows_the_builds_links(
    tree: Confined, host: Path
) -> None:
    meta_dir = tree.root / "meta"
    meta_dir.mkdir()
    path = meta_dir / "meta.json"
    (meta_dir / "sd@1:spy.json").symlink_to(host / "secret.json")
    (meta_dir / "meta.json.lock").symlink_to(host / "victim-lock")
    path.write_text("{}")

    with tree.directory(meta_dir) as fd:
        external = meta.run(["get", "stolen", "--external", "sd@1:spy", "-F"], path, {}, fd)
        setting = meta.run(["set", "a", "b"], path, {}, fd)
        (meta_dir / "meta.json.lock").unlink()
        path.unlink()
        path.symlink_to(host / "secret.json")
        getting = meta.run(["get", "stolen"], path, {}, fd)
        setting_again = meta.run(["set", "a", "b"], path, {}, fd)

    answers = [external, setting, getting, setting_again]
    assert [code for code, _out, _err in answers] == [1, 1, 1, 1]
    assert "host-value" not in json.dumps(answers)
    assert "Too many levels of symbolic links" in setting_again[2]
    assert not (host / "victim-lock").exists()
    assert (host / "secret.json").read_text() == '{"stolen": "host-value"}'


def test_meta_without_a_handle_still_works_on_a_plain_path(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    assert meta.run(["set", "a.b", "1"], path, {}) == (0, "", "")
    assert meta.run(["get", "a"], path, {}) == (0, '{"b": "1"}\n', "")
