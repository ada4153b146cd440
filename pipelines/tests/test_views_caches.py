"""The Cache section of a pipeline's options page: what is kept, and a confirmed Clear."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from builds import caches
from builds.models import Build, BuildStatus, Cache
from pipelines.models import Job, Pipeline, PipelinePermission
from pipelines.tests.factories import XSS, event_from_yaml, pipeline_from_yaml
from screwdriver_site.outputs import outputs

pytestmark = pytest.mark.django_db

YAML = """\
cache:
  pipeline: [~/.warm]
  job:
    main: [deps]
jobs:
  main:
    image: node:22
    requires: [~commit]
    steps:
      - a: echo a
"""


@pytest.fixture
def pipeline(owner: User) -> Pipeline:
    return pipeline_from_yaml(YAML, owner=owner)


def fill(pipeline: Pipeline) -> dict[str, Cache]:
    build = Build.objects.get(event=event_from_yaml(pipeline, YAML))
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.RUNNING)
    saved = {}
    for scope, name in (("pipelines", "~/.warm"), ("jobs", "deps")):
        data = f"archive of {name}".encode()
        saved[scope] = caches.store_cache(
            build=build,
            scope=scope,
            name=name,
            source=io.BytesIO(data),
            length=len(data),
            digest=hashlib.sha256(data).hexdigest(),
        )
    return saved


def options(client: Client, pipeline: Pipeline) -> Any:
    return client.get(reverse("pipelines:options", args=[pipeline.pk]))


def clear(client: Client, pipeline: Pipeline, scope: str, cache_id: int, **extra: str) -> Any:
    url = reverse("pipelines:clear-caches", args=[pipeline.pk])
    return client.post(url, {"scope": scope, "cacheId": cache_id, **extra}, follow=True)


def test_the_options_page_lists_each_scopes_caches_with_a_clear_button(
    admin_client: Client, pipeline: Pipeline
) -> None:
    assert "No caches yet." in options(admin_client, pipeline).content.decode()
    fill(pipeline)
    page = options(admin_client, pipeline).content.decode()
    main = Job.objects.get(pipeline=pipeline, name="main")
    assert f'id="cache-pipelines-{pipeline.pk}"' in page
    assert f'id="cache-jobs-{main.pk}"' in page
    assert "<code>~/.warm</code>" in page and "<code>deps</code>" in page
    assert "Clear the caches of job main" in page
    assert 'name="confirm" value="yes" required' in page


def test_clearing_needs_the_box_ticked_then_clears_that_scope_only(
    admin_client: Client, pipeline: Pipeline
) -> None:
    saved = fill(pipeline)
    unticked = clear(admin_client, pipeline, "pipelines", pipeline.pk)
    assert "Tick the box next to Clear to confirm." in unticked.content.decode()
    assert Cache.objects.count() == 2

    done = clear(admin_client, pipeline, "pipelines", pipeline.pk, confirm="yes")
    assert "Cleared 1 cache." in done.content.decode()
    assert list(Cache.objects.values_list("name", flat=True)) == ["deps"]
    assert not outputs().exists(saved["pipelines"].storage_name)
    assert outputs().exists(saved["jobs"].storage_name)


def test_only_admins_clear_and_others_never_learn_of_a_private_pipeline(
    member_client: Client, owner: User, member: User
) -> None:
    public = pipeline_from_yaml(YAML, owner=owner, name="local/public")
    fill(public)
    PipelinePermission.objects.create(pipeline=public, user=member, role="push")
    assert clear(member_client, public, "pipelines", public.pk, confirm="yes").status_code == 403
    private = pipeline_from_yaml(YAML, owner=owner, name="local/private", private=True)
    assert clear(member_client, private, "pipelines", private.pk, confirm="yes").status_code == 404
    assert Cache.objects.count() == 2


def test_clearing_without_the_pages_csrf_token_is_refused(owner: User, pipeline: Pipeline) -> None:
    fill(pipeline)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert clear(browser, pipeline, "pipelines", pipeline.pk, confirm="yes").status_code == 403
    assert Cache.objects.count() == 2


def test_names_are_shown_escaped_and_the_page_reads_caches_in_a_fixed_number_of_queries(
    admin_client: Client,
    pipeline: Pipeline,
    django_assert_max_num_queries: Any,
) -> None:
    fill(pipeline)
    options(admin_client, pipeline)
    with django_assert_max_num_queries(100) as few:
        options(admin_client, pipeline)
    for n in range(5):
        Cache.objects.create(
            pipeline=pipeline,
            scope="events",
            scope_id=1000 + n,
            name=XSS,
            name_key=str(n),
            storage_name=f"caches/events/{1000 + n}/x",
            size=1,
            digest="0" * 64,
            updated_at=timezone.now(),
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = options(admin_client, pipeline).content.decode()
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.index("Event 1004") < page.index("Event 1000")
