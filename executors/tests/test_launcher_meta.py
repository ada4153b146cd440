"""The `meta` command, run as builds run it: an executable on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from executors.launcher import meta
from executors.launcher.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    ws.prepare({"build": {"id": 7}, "flag": True})
    return ws


def run_meta(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH and a foreign cwd: the command must not need the project to be importable.
    env = {"PATH": f"{ws.bin}:/usr/bin:/bin", "SD_META_PATH": str(ws.meta_path)}
    return subprocess.run(
        ["meta", *args], env=env, cwd="/", capture_output=True, text=True, timeout=30
    )


def test_set_with_dotted_keys_creates_nested_objects_of_strings(workspace: Workspace) -> None:
    assert run_meta(workspace, "set", "a.b.c", "1").returncode == 0
    assert run_meta(workspace, "set", "a.b.d", "two words").returncode == 0
    assert workspace.read_meta()["a"] == {"b": {"c": "1", "d": "two words"}}


def test_get_prints_strings_raw_and_everything_else_as_json(workspace: Workspace) -> None:
    run_meta(workspace, "set", "name", "x y")
    assert run_meta(workspace, "get", "name").stdout == "x y\n"
    assert run_meta(workspace, "get", "build").stdout == '{"id": 7}\n'
    assert run_meta(workspace, "get", "build.id").stdout == "7\n"
    assert run_meta(workspace, "get", "flag").stdout == "true\n"


def test_get_of_a_missing_key_prints_null_and_succeeds(workspace: Workspace) -> None:
    result = run_meta(workspace, "get", "no.such.key")
    assert (result.returncode, result.stdout) == (0, "null\n")


def test_set_replaces_a_non_object_parent(workspace: Workspace) -> None:
    run_meta(workspace, "set", "flag.inner", "v")
    assert workspace.read_meta()["flag"] == {"inner": "v"}


def test_json_values_can_be_stored_on_request(workspace: Workspace) -> None:
    run_meta(workspace, "set", "--json-value", "list", '[1, {"a": 2}]')
    assert workspace.read_meta()["list"] == [1, {"a": 2}]
    assert run_meta(workspace, "get", "list.1.a").stdout == "2\n"


def test_writes_are_atomic_and_leave_no_temporary_files(workspace: Workspace) -> None:
    for i in range(5):
        run_meta(workspace, "set", f"k{i}", str(i))
    names = sorted(p.name for p in workspace.meta_dir.iterdir())
    assert names == ["meta.json", "meta.json.lock"]
    assert json.loads(workspace.meta_path.read_text())["k4"] == "4"


def test_concurrent_sets_all_land(workspace: Workspace) -> None:
    env = {"PATH": f"{workspace.bin}:/usr/bin:/bin", "SD_META_PATH": str(workspace.meta_path)}
    procs = [subprocess.Popen(["meta", "set", f"many.k{i}", str(i)], env=env) for i in range(10)]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    assert len(workspace.read_meta()["many"]) == 10


def test_bad_usage_and_bad_keys_fail_with_a_message(workspace: Workspace) -> None:
    assert run_meta(workspace, "frobnicate").returncode == 2
    bad = run_meta(workspace, "set", "a..b", "x")
    assert bad.returncode == 1
    assert "Invalid meta key" in bad.stderr


def test_install_falls_back_to_sh_when_the_interpreter_path_cannot_be_a_shebang(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "dir with space"
    odd.mkdir()
    python = odd / "python"
    python.symlink_to(os.path.realpath(sys.executable))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    meta.install(bin_dir, str(python))
    target = tmp_path / "m.json"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SD_META_PATH": str(target)}
    subprocess.run(["meta", "set", "x", "1"], env=env, check=True, timeout=30)
    assert json.loads(target.read_text()) == {"x": "1"}
