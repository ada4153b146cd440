"""Templates on real builds behind the real ASGI server: one pipeline publishes and tags a
template with the commands on its PATH, another uses it, a pull request's publish is refused."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from builds.tests.step_logs import step_log
from conftest import GitRepo, database_url, needs_sandbox, run_git, wait_until
from pipelines.models import Event, Pipeline, Template, TemplateTag
from pipelines.services import Creator, create_pipeline, start_event, start_pr_event
from pipelines.template_selectors import pipelines_using
from screwdriver_site.api.tokens import issue_user_token
from tools.live_stack import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALICE = Creator("Alice Smith", "alice")
SD_TEMPLATE = """\
namespace: ns
name: tpl
version: '1.0'
description: Greets whoever uses it
maintainer: alice@example.com
config:
  image: alpine
  steps:
    - greet: echo "hello from $SD_TEMPLATE_FULLNAME@$SD_TEMPLATE_VERSION"
"""
PUBLISHER = """\
jobs:
  publish:
    image: alpine
    requires: [~commit, ~pr]
    steps:
      - validate: template-validate
      - publish: template-publish
      - tag: template-tag --name ns/tpl --version 1.0.0 --tag stable
"""
USER_YAML = """\
jobs:
  main:
    requires: [~commit]
    template: ns/tpl@stable
"""


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[LiveStack]:
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_BUILD_LEASE_SECONDS": "4"},
    )
    yield stack
    stack.stop()


def api(server: LiveStack, method: str, path: str, body: object = None) -> Any:
    """Call the live server as alice, through daphne."""
    request = urllib.request.Request(
        f"{server.url}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {issue_user_token(username='alice', is_admin=False)}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _finished(event: Event, job: str) -> Build | None:
    build = Build.objects.filter(event=event, job__name=job).first()
    if build is None or build.status in {BuildStatus.QUEUED, BuildStatus.RUNNING}:
        return None
    return build


def _wait(event: Event, job: str) -> Build:
    return wait_until(lambda: _finished(event, job), timeout=120, what=f"{job} to finish")


# Its pull request's build runs only where a sandbox can start (docs/security.md).
@needs_sandbox
def test_a_build_publishes_a_template_that_another_pipeline_runs_and_a_pr_cannot(
    server: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    alice = User.objects.create_user(username="alice")
    source = make_repo({"screwdriver.yaml": PUBLISHER, "sd-template.yaml": SD_TEMPLATE}, "tpl")
    owner = create_pipeline(checkout_url=source.checkout_url, user=alice)

    publish = _wait(start_event(pipeline=owner, start_from="~commit", creator=ALICE), "publish")

    assert publish.status == BuildStatus.SUCCESS, publish.status_message
    assert step_log(publish, "validate") == ["Template is valid"]
    assert step_log(publish, "publish") == [
        "Template ns/tpl@1.0.0 was successfully published and tagged as latest"
    ]
    assert step_log(publish, "tag") == ["Template ns/tpl@1.0.0 was successfully tagged as stable"]
    template = Template.objects.get(namespace="ns", name="tpl")
    assert (template.version, template.pipeline_id, template.latest) == ("1.0.0", owner.pk, True)
    assert dict(TemplateTag.objects.values_list("tag", "version")) == {
        "latest": "1.0.0",
        "stable": "1.0.0",
    }

    # daphne decodes ns%2Ftpl in the path it hands Django; the route still sees one segment.
    assert api(server, "GET", "/v4/templates/ns%2Ftpl/stable")["version"] == "1.0.0"
    # Newest first, as Screwdriver lists tags.
    assert [t["tag"] for t in api(server, "GET", "/v4/templates/ns%2Ftpl/tags")] == [
        "stable",
        "latest",
    ]
    # Another pipeline's file names the tag: the validator (over HTTP) and its build use it.
    validated = api(server, "POST", "/v4/validator", {"yaml": USER_YAML})
    assert "errors" not in validated
    assert validated["jobs"]["main"][0]["templateId"] == template.pk
    user = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": USER_YAML}, "user").checkout_url, user=alice
    )
    main = _wait(start_event(pipeline=user, start_from="~commit", creator=ALICE), "main")
    assert main.status == BuildStatus.SUCCESS, main.status_message
    assert step_log(main, "greet") == ["hello from ns/tpl@1.0.0"]
    # The job remembers the version it was built from: the template's page lists the pipeline.
    assert pipelines_using([template.pk], Pipeline.objects.all()) == [user]

    # A pull request's build runs the same steps; the server refuses its publish.
    sha = source.commit({"README.md": "a pull request"}, "the pull request's commit")
    run_git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=source.work)
    pr_event = start_pr_event(
        pipeline=owner,
        pr_num=3,
        sha=sha,
        creator=Creator("Mallory", "mallory"),
        pr={"fork": False, "title": "t", "ref": "feature", "url": ""},
    )
    assert pr_event is not None
    refused = _wait(pr_event, "PR-3:publish")
    assert refused.status == BuildStatus.FAILURE
    assert step_log(refused, "publish") == [
        "template-publish: 403 (Forbidden): A pull request's build cannot publish or tag "
        "templates: publish from a build of the pipeline's own branch."
    ]
    assert Template.objects.filter(namespace="ns", name="tpl").count() == 1
