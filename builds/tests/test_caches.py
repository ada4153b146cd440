"""Build caches on the server: who may read, write and clear them, caps, and both storages.

Every request goes through the API, with a build's own token as its launcher sends it, or
with a person's; the archives are opaque bytes here (executors/tests/test_launcher_cache.py
makes and checks real ones).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds import caches
from builds.launch import launch_spec
from builds.models import Build, BuildStatus, Cache
from builds.services import create_build
from builds.tests.asgi_client import asgi_get
from pipelines.models import Event, Job, Pipeline
from pipelines.tests.factories import event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs
from screwdriver_site.tokens import issue_build_token, issue_pipeline_token

pytestmark = pytest.mark.django_db

YAML = """\
cache:
  pipeline: [~/.warm]
  event: [$SD_SOURCE_DIR/node_modules]
  job:
    main: [out]
jobs:
  main:
    image: node:22
    requires: [~commit, ~pr]
    steps:
      - a: echo a
  quiet:
    image: node:22
    requires: [main]
    cache: false
    steps:
      - b: echo b
"""
ARCHIVE = b"\x1f\x8b pretend this is a tar.gz " * 100
DIGEST = hashlib.sha256(b"the files").hexdigest()


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner)


@pytest.fixture
def build(pipeline: Pipeline) -> Build:
    return running(Build.objects.get(event=event_from_yaml(pipeline, YAML), job__name="main"))


def running(build: Build) -> Build:
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.RUNNING)
    build.refresh_from_db()
    return build


def pr_build(pipeline: Pipeline) -> Build:
    """A build of `PR-7:main`, the pull request's copy of main, in the PR's own event."""
    main = Job.objects.get(pipeline=pipeline, name="main")
    job = Job.objects.create(pipeline=pipeline, name="PR-7:main", permutations=main.permutations)
    event = Event.objects.create(
        pipeline=pipeline, sha="b" * 40, start_from="~pr", type="pr", pr_num=7
    )
    return running(create_build(event=event, job=job))


def launcher(build: Build) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(build)}")
    return client


def url(build: Build, scope: str, name: str) -> str:
    return f"/v4/builds/{build.pk}/caches/{scope}/{quote(name, safe='').replace('.', '%2E')}"


def put(client: APIClient, build: Build, scope: str, name: str, body: bytes = ARCHIVE) -> Any:
    return client.put(
        url(build, scope, name),
        body,
        content_type="application/gzip",
        HTTP_X_CACHE_DIGEST=DIGEST,
    )


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def stored_names() -> list[str]:
    storage = outputs()
    found = []
    stack = ["caches"]
    while stack:
        folder = stack.pop()
        try:
            folders, files = storage.listdir(folder)
        except FileNotFoundError:  # a folder storage's missing folder (S3 lists none)
            continue
        found += [f"{folder}/{name}" for name in files]
        stack += [f"{folder}/{name}" for name in folders]
    return sorted(found)


@pytest.fixture(params=["folder", "s3"])
def storage_kind(request: pytest.FixtureRequest, outputs_folder: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_outputs")
    return str(request.param)


# -- what a build's steps and launch spec say -----------------------------------------------


def test_a_caching_job_gets_the_two_cache_steps_around_its_own(pipeline: Pipeline) -> None:
    event = event_from_yaml(pipeline, YAML)
    main = Build.objects.get(event=event, job__name="main")
    assert [s.name for s in main.steps.order_by("position")] == [
        "sd-setup-scm",
        "sd-setup-cache",
        "a",
        "sd-teardown-cache",
        "sd-teardown-artifacts",
    ]
    spec = launch_spec(main)
    assert [s["name"] for s in spec["steps"]] == ["a"]
    assert spec["cache"] == {
        "pipeline": ["~/.warm"],
        "event": ["$SD_SOURCE_DIR/node_modules"],
        "job": ["out"],
        "save": ["pipeline", "event", "job"],
        "maxBytes": 5 * 1024**3,
    }


def test_a_job_with_cache_false_caches_nothing(pipeline: Pipeline) -> None:
    event = event_from_yaml(pipeline, YAML)
    main = Build.objects.get(event=event, job__name="main")
    quiet = create_build(event=event, job=Job.objects.get(pipeline=pipeline, name="quiet"))
    assert main.pk != quiet.pk
    assert [s.name for s in quiet.steps.order_by("position")] == [
        "sd-setup-scm",
        "b",
        "sd-teardown-artifacts",
    ]
    assert "cache" not in launch_spec(quiet)


def test_a_pull_requests_build_is_told_it_saves_only_its_events_caches(
    pipeline: Pipeline,
) -> None:
    spec = launch_spec(pr_build(pipeline))
    assert spec["cache"]["save"] == ["event"]
    assert spec["cache"]["job"] == ["out"]


# -- saving and restoring -------------------------------------------------------------------


def test_a_saved_cache_comes_back_whole_with_its_digest(build: Build, storage_kind: str) -> None:
    client = launcher(build)
    assert client.get(url(build, "pipeline", "~/.warm")).status_code == 404

    saved = put(client, build, "pipeline", "~/.warm")
    assert saved.status_code == 202, saved.content
    assert saved.json() == {
        "scope": "pipelines",
        "name": "~/.warm",
        "size": len(ARCHIVE),
        "digest": DIGEST,
    }

    got = client.get(url(build, "pipeline", "~/.warm"))
    assert got.status_code == 200
    assert got["X-Cache-Digest"] == DIGEST
    assert got["Content-Length"] == str(len(ARCHIVE))
    assert body_of(got) == ARCHIVE
    head = client.head(url(build, "pipelines", "~/.warm"))
    assert head.status_code == 200 and head["X-Cache-Digest"] == DIGEST
    row = Cache.objects.get()
    assert (row.scope, row.scope_id, row.build_id) == ("pipelines", build.job.pipeline_id, build.pk)
    assert row.read_at is not None
    assert row.storage_name.startswith(f"caches/pipelines/{build.job.pipeline_id}/")


def test_saving_again_replaces_the_archive_and_leaves_no_old_one(build: Build) -> None:
    client = launcher(build)
    put(client, build, "job", "out", b"first")
    put(client, build, "job", "out", b"second, longer")
    assert body_of(client.get(url(build, "job", "out"))) == b"second, longer"
    (row,) = Cache.objects.all()
    assert stored_names() == [row.storage_name]
    assert row.storage_name.startswith(f"caches/jobs/{build.job_id}/")


def test_each_scope_is_the_builds_own_pipeline_event_and_job(
    pipeline: Pipeline, build: Build
) -> None:
    client = launcher(build)
    for scope, name in (("pipeline", "~/.warm"), ("event", "$SD_SOURCE_DIR/node_modules")):
        assert put(client, build, scope, name).status_code == 202
    put(client, build, "job", "out")
    ids = dict(Cache.objects.values_list("scope", "scope_id"))
    assert ids == {"pipelines": pipeline.pk, "events": build.event_id, "jobs": build.job_id}

    # The next event's build finds the pipeline's and the job's caches, not the event's.
    later = running(
        Build.objects.get(event=event_from_yaml(pipeline, YAML + "\n"), job__name="main")
    )
    other = launcher(later)
    assert other.get(url(later, "pipeline", "~/.warm")).status_code == 200
    assert other.get(url(later, "job", "out")).status_code == 200
    assert other.get(url(later, "event", "$SD_SOURCE_DIR/node_modules")).status_code == 404


def test_a_cache_past_the_cap_is_refused_with_413_and_leaves_nothing(
    build: Build, settings: Any
) -> None:
    settings.SD_CACHE_MAX_BYTES = 1000
    response = put(launcher(build), build, "pipeline", "~/.warm", b"x" * 1001)
    assert response.status_code == 413
    assert "at most 1000 bytes" in response.json()["message"]
    assert not Cache.objects.exists()
    assert stored_names() == []
    assert put(launcher(build), build, "pipeline", "~/.warm", b"x" * 1000).status_code == 202


def test_a_body_shorter_than_announced_stores_nothing(build: Build) -> None:
    with pytest.raises(caches.CacheError, match="ended after 5 of the 10 bytes"):
        caches.store_cache(
            build=build,
            scope="pipelines",
            name="~/.warm",
            source=io.BytesIO(b"12345"),
            length=10,
            digest=DIGEST,
        )
    assert not Cache.objects.exists()
    assert stored_names() == []


def test_a_missing_content_length_or_digest_is_a_4xx(build: Build) -> None:
    client = launcher(build)
    no_digest = client.put(url(build, "pipeline", "~/.warm"), ARCHIVE, content_type="x/y")
    assert no_digest.status_code == 400
    assert "X-Cache-Digest" in no_digest.json()["message"]


# -- who may touch which cache --------------------------------------------------------------


def test_another_builds_token_cannot_read_or_write_this_builds_caches(
    pipeline: Pipeline, build: Build
) -> None:
    put(launcher(build), build, "pipeline", "~/.warm")
    other = running(
        Build.objects.get(event=event_from_yaml(pipeline, YAML + "\n"), job__name="main")
    )
    intruder = launcher(other)
    assert intruder.get(url(build, "pipeline", "~/.warm")).status_code == 403
    assert put(intruder, build, "pipeline", "~/.warm").status_code == 403


def test_people_and_pipeline_tokens_cannot_use_the_launchers_routes(
    pipeline: Pipeline, build: Build, owner: User
) -> None:
    person = APIClient()
    person.force_authenticate(owner)
    assert person.get(url(build, "pipeline", "~/.warm")).status_code == 403
    assert put(person, build, "pipeline", "~/.warm").status_code == 403
    robot = APIClient()
    robot.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pipeline_token(pipeline_id=pipeline.pk)}")
    assert put(robot, build, "pipeline", "~/.warm").status_code == 403
    assert APIClient().get(url(build, "pipeline", "~/.warm")).status_code == 401
    assert not Cache.objects.exists()


def test_a_build_reaches_only_the_names_its_job_lists(build: Build) -> None:
    client = launcher(build)
    response = put(client, build, "pipeline", "/etc/anything")
    assert response.status_code == 403
    assert "lists no pipeline cache '/etc/anything'" in response.json()["message"]
    assert put(client, build, "job", "~/.warm").status_code == 403
    assert put(client, build, "build", "out").status_code == 400
    assert not Cache.objects.exists()


def test_a_finished_builds_token_can_no_longer_touch_caches(build: Build) -> None:
    client = launcher(build)
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    assert put(client, build, "pipeline", "~/.warm").status_code == 403
    assert client.get(url(build, "pipeline", "~/.warm")).status_code == 403


def test_a_pull_requests_build_reads_the_pipelines_and_its_jobs_caches_but_never_writes_them(
    pipeline: Pipeline, build: Build
) -> None:
    branch = launcher(build)
    put(branch, build, "pipeline", "~/.warm", b"from the branch")
    put(branch, build, "job", "out", b"main's job cache")
    pr = pr_build(pipeline)
    untrusted = launcher(pr)

    assert body_of(untrusted.get(url(pr, "pipeline", "~/.warm"))) == b"from the branch"
    assert body_of(untrusted.get(url(pr, "job", "out"))) == b"main's job cache"
    for scope, name in (("pipeline", "~/.warm"), ("job", "out")):
        refused = put(untrusted, pr, scope, name, b"poisoned")
        assert refused.status_code == 403
        assert "never change it" in refused.json()["message"]
    assert body_of(branch.get(url(build, "pipeline", "~/.warm"))) == b"from the branch"
    assert body_of(branch.get(url(build, "job", "out"))) == b"main's job cache"

    # Its own event's cache is its to write, as in Screwdriver: only its own builds read it.
    assert put(untrusted, pr, "event", "$SD_SOURCE_DIR/node_modules").status_code == 202
    assert Cache.objects.get(scope="events").scope_id == pr.event_id


# -- clearing: DELETE /v4/pipelines/{id}/caches ---------------------------------------------


def clear(client: APIClient, pipeline: Pipeline, scope: str, cache_id: object) -> Any:
    return client.delete(f"/v4/pipelines/{pipeline.pk}/caches?scope={scope}&cacheId={cache_id}")


def as_person(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_admin_clears_the_pipelines_caches_and_builds_then_find_none(
    pipeline: Pipeline, build: Build, owner: User
) -> None:
    client = launcher(build)
    put(client, build, "pipeline", "~/.warm")
    put(client, build, "job", "out")

    response = clear(as_person(owner), pipeline, "pipelines", pipeline.pk)
    assert response.status_code == 204
    assert client.get(url(build, "pipeline", "~/.warm")).status_code == 404
    assert client.get(url(build, "job", "out")).status_code == 200
    assert clear(as_person(owner), pipeline, "jobs", build.job_id).status_code == 204
    assert not Cache.objects.exists()
    assert stored_names() == []


def test_clearing_needs_admin_rights_and_hides_a_pipeline_the_caller_cannot_see(
    owner: User, member: User
) -> None:
    public = pipeline_from_yaml(YAML, owner=owner, name="local/public")
    private = pipeline_from_yaml(YAML, owner=owner, name="local/private", private=True)
    denied = clear(as_person(member), public, "pipelines", public.pk)
    assert denied.status_code == 403
    assert "admin rights" in denied.json()["message"]
    assert clear(as_person(member), private, "pipelines", private.pk).status_code == 404
    robot = APIClient()
    robot.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_pipeline_token(pipeline_id=public.pk)}")
    assert clear(robot, public, "pipelines", public.pk).status_code == 403
    assert APIClient().delete(f"/v4/pipelines/{public.pk}/caches").status_code == 401


def test_clearing_checks_the_scope_and_that_the_id_is_the_pipelines(
    pipeline: Pipeline, owner: User
) -> None:
    other = pipeline_from_yaml(YAML, owner=owner, name="local/other")
    alice = as_person(owner)
    bad_scope = clear(alice, pipeline, "builds", pipeline.pk)
    assert bad_scope.status_code == 400
    assert "scope must be pipelines, events or jobs" in bad_scope.json()["message"]
    assert clear(alice, pipeline, "pipelines", "x").status_code == 400
    assert clear(alice, pipeline, "pipelines", other.pk).status_code == 404
    other_job = Job.objects.filter(pipeline=other).first()
    assert other_job is not None
    assert clear(alice, pipeline, "jobs", other_job.pk).status_code == 404
    assert alice.delete(f"/v4/pipelines/{pipeline.pk}/caches").status_code == 400


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("error")
def test_under_asgi_a_cache_is_sent_chunk_by_chunk_not_read_whole_first(build: Build) -> None:
    big = bytes(range(256)) * 4096 * 3  # three storage chunks
    assert put(launcher(build), build, "pipeline", "~/.warm", big).status_code == 202
    status, body, chunks = async_to_sync(asgi_get)(
        url(build, "pipeline", "~/.warm"), issue_build_token(build), on_first_chunk=nothing
    )
    assert status == 200
    assert body == big
    assert chunks >= 3


async def nothing() -> None:
    pass
