"""The meta a launch spec starts a build with: default keys and a remote parent's meta."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from builds.launch import launch_spec
from builds.models import Build
from conftest import GitRepo
from executors.launcher import meta
from pipelines.services import Creator, create_pipeline, start_event

pytestmark = pytest.mark.django_db

CONFIG = """
jobs:
  {job}:
    image: alpine
    requires: [~commit]
    steps:
      - test: echo test
"""


@pytest.fixture(autouse=True)
def _no_hook_delivery(settings: Any) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"


def test_a_build_triggered_from_another_pipeline_keeps_its_meta_for_meta_get_external(
    make_repo: Callable[..., GitRepo], tmp_path: Path
) -> None:
    alice = User.objects.create_user("alice")
    upstream = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": CONFIG.format(job="publish")}, "up"
        ).checkout_url,
        user=alice,
    )
    downstream = create_pipeline(
        checkout_url=make_repo(
            {"screwdriver.yaml": CONFIG.format(job="deploy")}, "down"
        ).checkout_url,
        user=alice,
    )
    creator = Creator("Alice Smith", "alice")
    published = Build.objects.get(
        event=start_event(pipeline=upstream, start_from="~commit", creator=creator)
    )
    Build.objects.filter(pk=published.pk).update(
        meta={"version": "1.2.3", "sd": {"9": {"older": {"x": 1}}}}
    )
    event = start_event(pipeline=downstream, start_from="~commit", creator=creator)
    deploy = Build.objects.get(event=event)
    deploy.parent_builds = {
        str(upstream.pk): {"eventId": published.event_id, "jobs": {"publish": published.pk}}
    }
    deploy.save(update_fields=["parent_builds"])

    spec_meta = launch_spec(deploy)["meta"]

    assert spec_meta["sd"][str(upstream.pk)] == {"publish": {"version": "1.2.3"}}
    assert spec_meta["event"] == {"creator": {"name": "Alice Smith", "username": "alice"}}
    assert spec_meta["commit"]["message"] == "initial commit"
    assert spec_meta["commit"]["changedFiles"] == ""
    assert spec_meta["build"]["jobName"] == "deploy"
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(spec_meta))
    assert meta.run(["get", "version", "--external", f"sd@{upstream.pk}:publish"], path, {}) == (
        0,
        "1.2.3\n",
        "",
    )
