"""Storing a build's artifacts: paths stay inside, rows follow files, either storage."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from builds.artifacts import (
    ArtifactPathError,
    artifact_at,
    artifacts_of,
    check_artifact_path,
    delete_artifacts,
    store_artifact,
)
from builds.models import Artifact, Build
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs, read_chunks

YAML = """\
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""


@pytest.fixture
def build(db: None) -> Build:
    pipeline = pipeline_from_yaml(YAML)
    return Build.objects.get(event=event_from_yaml(pipeline, YAML))


@pytest.mark.parametrize(
    ("path", "clean"),
    [("a.txt", "a.txt"), ("./r/./index.html", "r/index.html"), ("r//x", "r/x")],
)
def test_paths_are_made_canonical(path: str, clean: str) -> None:
    assert check_artifact_path(path) == clean


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a\nb", ".", "a\\b"])
def test_a_path_outside_the_folder_is_refused(path: str) -> None:
    with pytest.raises(ArtifactPathError):
        check_artifact_path(path)


@pytest.fixture(params=["folder", "s3"])
def storage_kind(request: pytest.FixtureRequest, outputs_folder: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_outputs")
    return str(request.param)


def test_a_stored_file_is_listed_with_size_digest_and_type(build: Build, storage_kind: str) -> None:
    data = b"<html><body>report</body></html>"
    store_artifact(build, "reports/index.html", io.BytesIO(data))
    store_artifact(build, "a.txt", io.BytesIO(b"one"))
    listed = artifacts_of(build)
    assert [a.path for a in listed] == ["a.txt", "reports/index.html"]
    report = artifact_at(build, "./reports/index.html")
    assert report is not None
    assert (report.size, report.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert report.content_type == "text/html"
    assert b"".join(read_chunks(report.storage_name)) == data


def test_storing_a_path_again_replaces_the_file_and_the_row(build: Build) -> None:
    store_artifact(build, "a.txt", io.BytesIO(b"first"))
    store_artifact(build, "a.txt", io.BytesIO(b"second, longer"))
    (only,) = artifacts_of(build)
    assert only.size == len(b"second, longer")
    assert b"".join(read_chunks(only.storage_name)) == b"second, longer"


def test_deleting_a_builds_artifacts_removes_files_and_rows(build: Build) -> None:
    store_artifact(build, "a.txt", io.BytesIO(b"x"))
    store_artifact(build, "deep/b.txt", io.BytesIO(b"y"))
    assert delete_artifacts([build]) == 2
    assert not Artifact.objects.filter(build=build).exists()
    assert not outputs().exists(f"artifacts/{build.pk}/a.txt")
