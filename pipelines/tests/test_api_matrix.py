"""The authorization matrix: every /v4 route against every kind of caller, declared once.

Each row names a route (by URL name and method) and what each persona gets. The personas:
anonymous, guest, outsider (signed in, no role), pull, push and admin (roles on the pipeline),
a pipeline token of this pipeline and of another, a build token of this pipeline's running
build and of another pipeline's build, an expired token, and the token of a build that ended
a minute ago (used on its own build's URLs, where only teardown reporting is still allowed).
The matrix runs against a public pipeline with guest access on. Every cell runs in a
transaction that is rolled back, so cells cannot affect each other. A route the URL resolver
knows and the matrix does not (or the reverse) fails the test.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from builds.artifact_links import sign_view_token
from builds.artifacts import store_artifact
from builds.models import Build, BuildStatus, Step
from conftest import GitRepo
from pipelines.models import (
    Command,
    CommandTag,
    PipelinePermission,
    PipelineTemplate,
    PipelineTemplateTag,
    PipelineTemplateVersion,
    Secret,
    Template,
    TemplateTag,
)
from pipelines.services import (
    create_collection,
    create_pipeline,
    create_pipeline_token,
    create_secret,
    create_user_token,
    grant_permission,
)
from pipelines.tests.api_fixtures import CHAIN, finish, main_build, make_world, new_event
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.outputs import outputs
from screwdriver_site.tokens import generation_of, issue_build_token, issue_guest_token

pytestmark = pytest.mark.django_db

PERSONAS = (
    "anonymous",
    "guest",
    "outsider",
    "pull",
    "push",
    "admin",
    "pipeline",
    "other_pipeline",
    "build",
    "other_build",
    "expired",
    "ended",
)
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def rule(base: dict[str, int], **overrides: int) -> dict[str, int]:
    """A full persona -> status map: `base` with some personas changed."""
    merged = {**base, **overrides}
    assert set(merged) == set(PERSONAS), set(PERSONAS) ^ set(merged)
    return merged


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PERSONAS, status)


DENIED = {**everyone(403), "anonymous": 401, "expired": 401}
# Pull on the pipeline: anyone signed in (it is public), guests, its own pipeline and builds.
READ = rule(
    everyone(200), anonymous=401, expired=401, other_pipeline=403, other_build=403, ended=403
)
# Lists filter rather than refuse: another pipeline's token sees only its own pipeline.
LIST = rule(everyone(200), anonymous=401, expired=401, ended=403)
PEOPLE_READ = rule(READ, guest=403, pipeline=403, build=403)
PUSH = rule(DENIED, push=200, admin=200, pipeline=200)
PUSH_PEOPLE = rule(DENIED, push=200, admin=200)
ADMIN = rule(DENIED, admin=200)
PEOPLE = rule(DENIED, outsider=200, pull=200, push=200, admin=200)
# A person's own token: only its owner (the admin persona) finds it.
OWN_TOKEN = rule(DENIED, outsider=404, pull=404, push=404, admin=200)
REPORT = rule(DENIED, build=200, ended=200)
PUBLIC = everyone(200)
BADGE = rule(PUBLIC, expired=401)
METRICS = rule(READ, guest=403, build=403)
# Templates are shared: people, pipelines and builds read them; only the owner's builds change them.
TEMPLATE_READ = rule(
    DENIED,
    **dict.fromkeys(["outsider", "pull", "push", "admin"], 200),
    pipeline=200,
    other_pipeline=200,
    build=200,
    other_build=200,
)


@dataclass(frozen=True)
class Row:
    """One route and method, what to send, and what each persona must get."""

    name: str
    method: str
    expect: dict[str, int]
    body: Callable[[dict[str, Any]], Any] | None = None
    kwargs: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda ids: {})
    query: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def p(ids: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline_id": ids["pipeline"]}


def b(ids: dict[str, Any]) -> dict[str, Any]:
    return {"build_id": ids["build"]}


def cache(ids: dict[str, Any]) -> dict[str, Any]:
    return {"build_id": ids["build"], "scope": "pipeline", "name": "node_modules"}


def view(ids: dict[str, Any]) -> dict[str, Any]:
    """A capability address of the build's artifacts, made for the pull person."""
    return {"build_id": ids["build"], "token": ids["view_token"]}


def artifact(ids: dict[str, Any]) -> dict[str, Any]:
    return {"build_id": ids["build"], "artifact_path": "reports/summary.txt"}


def tpl(ids: dict[str, Any]) -> dict[str, Any]:
    return {"name": "ns/tpl"}


TEMPLATE_YAML = (
    "namespace: ns\nname: tpl\nversion: '1.0'\ndescription: d\nmaintainer: a@b.example.com\n"
    "config:\n  image: alpine\n  steps:\n    - hi: echo hi\n"
)


def cmd(ids: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": "ns", "name": "cmd"}


COMMAND_SPEC = (
    '{"namespace": "ns", "name": "cmd", "version": "1.0", "description": "d", '
    '"maintainer": "a@b.example.com", "format": "docker", "docker": {"image": "alpine"}}'
)


def ptpl(ids: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": "ns", "name": "pipe"}


PIPELINE_TEMPLATE_YAML = (
    "namespace: ns\nname: pipe\nversion: '1.0'\ndescription: d\nmaintainer: a@b.example.com\n"
    "config:\n  jobs:\n    main:\n      image: alpine\n      requires: [~commit]\n"
    "      steps:\n        - hi: echo hi\n"
)


def step(ids: dict[str, Any]) -> dict[str, Any]:
    return {"build_id": ids["build"], "name": "hello"}


MATRIX: list[Row] = [
    Row("status", "get", PUBLIC),
    Row("versions", "get", PUBLIC),
    Row("schema", "get", PUBLIC),
    Row("docs", "get", PUBLIC),
    Row("auth-contexts", "get", PUBLIC),
    Row("auth-login-guest", "get", PUBLIC),
    Row("auth-login-guest", "post", PUBLIC),
    Row(
        "auth-login", "post", PUBLIC, body=lambda ids: {"username": "pat", "password": "pw-4-pat!"}
    ),
    Row("auth-token", "get", rule(LIST, build=403, other_build=403)),
    Row(
        "auth-logout", "post", rule(DENIED, guest=200, outsider=200, pull=200, push=200, admin=200)
    ),
    Row("validator", "post", rule(LIST, guest=403), body=lambda ids: {"yaml": CHAIN}),
    Row("webhook-local", "post", everyone(401), body=lambda ids: {"repository": "/x"}),
    # No caller's token makes a delivery: without GitHub's headers it is a 400 for everyone.
    Row("webhooks", "post", everyone(400), body=lambda ids: {"zen": "x"}),
    Row("pipeline-list", "get", LIST),
    Row(
        "pipeline-list",
        "post",
        rule(PEOPLE, outsider=201, pull=201, push=201, admin=201),
        body=lambda ids: {"checkoutUrl": ids["spare_url"]},
    ),
    Row("pipeline-detail", "get", READ, kwargs=p),
    Row("pipeline-detail", "put", ADMIN, kwargs=p, body=lambda ids: {"checkoutUrl": ids["url"]}),
    # The admin may delete, but not while a build runs: a 409 says to stop it first.
    Row("pipeline-detail", "delete", rule(ADMIN, admin=409), kwargs=p),
    Row("pipeline-sync", "post", rule(PUSH, push=204, admin=204, pipeline=204), kwargs=p),
    # The parent's admins start its children (it has none here: nothing starts, still 201).
    Row("pipeline-startall", "post", rule(ADMIN, admin=201), kwargs=p),
    Row("pipeline-jobs", "get", READ, kwargs=p),
    # Metrics are for people and pipeline tokens with pull rights, as in Screwdriver.
    Row("pipeline-metrics", "get", METRICS, kwargs=p),
    Row("job-metrics", "get", METRICS, kwargs=lambda ids: {"job_id": ids["job"]}),
    Row("event-metrics", "get", METRICS, kwargs=lambda ids: {"event_id": ids["event"]}),
    Row("pipeline-events", "get", READ, kwargs=p),
    Row("pipeline-stages", "get", READ, kwargs=p),
    Row("pipeline-builds", "get", READ, kwargs=p),
    Row("pipeline-latest-build", "get", READ, kwargs=p),
    # A public pipeline's badges need no credentials: README renderers send none.
    Row("pipeline-badge", "get", BADGE, kwargs=p),
    Row("job-badge", "get", BADGE, kwargs=lambda ids: {**p(ids), "job_name": "main"}),
    Row("job-id-badge", "get", BADGE, kwargs=lambda ids: {"job_id": ids["job"]}),
    Row("pipeline-permissions", "get", PEOPLE_READ, kwargs=p),
    Row(
        "pipeline-permission",
        "put",
        ADMIN,
        body=lambda ids: {"role": "pull"},
        kwargs=lambda ids: {**p(ids), "username": "olive"},
    ),
    Row(
        "pipeline-permission",
        "delete",
        rule(ADMIN, admin=204),
        kwargs=lambda ids: {**p(ids), "username": "pat"},
    ),
    Row("pipeline-secrets", "get", PUSH_PEOPLE, kwargs=p),
    # A local pipeline has no deploy key, and cannot use one: its admin is told so.
    Row("pipeline-deploy-key", "get", rule(ADMIN, admin=404), kwargs=p),
    Row("pipeline-deploy-key", "post", rule(ADMIN, admin=409), kwargs=p),
    Row("pipeline-tokens", "get", ADMIN, kwargs=p),
    Row(
        "pipeline-tokens", "post", rule(ADMIN, admin=201), kwargs=p, body=lambda ids: {"name": "ci"}
    ),
    Row(
        "pipeline-token",
        "put",
        ADMIN,
        body=lambda ids: {"description": "x"},
        kwargs=lambda ids: {**p(ids), "token_id": ids["pipeline_token"]},
    ),
    Row(
        "pipeline-token",
        "delete",
        rule(ADMIN, admin=204),
        kwargs=lambda ids: {**p(ids), "token_id": ids["pipeline_token"]},
    ),
    Row(
        "pipeline-token-refresh",
        "put",
        ADMIN,
        kwargs=lambda ids: {**p(ids), "token_id": ids["pipeline_token"]},
    ),
    Row("job-detail", "get", READ, kwargs=lambda ids: {"job_id": ids["job"]}),
    Row(
        "job-detail",
        "put",
        PUSH,
        kwargs=lambda ids: {"job_id": ids["job"]},
        body=lambda ids: {"state": "DISABLED", "stateChangeMessage": "flaky"},
    ),
    Row("job-builds", "get", READ, kwargs=lambda ids: {"job_id": ids["job"]}),
    Row("job-latest-build", "get", READ, kwargs=lambda ids: {"job_id": ids["job"]}),
    # Any build may read a public pipeline's last meta (`meta get --external`); a private
    # pipeline's is refused to other pipelines' builds (builds/tests/test_meta_keys.py).
    Row(
        "job-last-successful-meta",
        "get",
        rule(READ, other_build=200),
        kwargs=lambda ids: {"job_id": ids["job"]},
    ),
    Row(
        "pipeline-job-last-successful-meta",
        "get",
        rule(READ, other_build=200),
        kwargs=lambda ids: {**p(ids), "job_name": "main"},
    ),
    Row(
        "event-create",
        "post",
        rule(PUSH, push=201, admin=201, pipeline=201),
        body=lambda ids: {"pipelineId": ids["pipeline"], "startFrom": "main"},
    ),
    Row("event-detail", "get", READ, kwargs=lambda ids: {"event_id": ids["event"]}),
    Row("event-builds", "get", READ, kwargs=lambda ids: {"event_id": ids["event"]}),
    Row("event-stage-builds", "get", READ, kwargs=lambda ids: {"event_id": ids["event"]}),
    Row("event-stop", "put", PUSH, kwargs=lambda ids: {"event_id": ids["event"]}),
    Row(
        "secret-create",
        "post",
        rule(ADMIN, admin=201),
        body=lambda ids: {"pipelineId": ids["pipeline"], "name": "NEW_ONE", "value": "v"},
    ),
    Row("secret-detail", "get", PUSH_PEOPLE, kwargs=lambda ids: {"secret_id": ids["secret"]}),
    Row(
        "secret-detail",
        "put",
        ADMIN,
        kwargs=lambda ids: {"secret_id": ids["secret"]},
        body=lambda ids: {"value": "new"},
    ),
    Row(
        "secret-detail",
        "delete",
        rule(ADMIN, admin=204),
        kwargs=lambda ids: {"secret_id": ids["secret"]},
    ),
    Row("collection-list", "get", PEOPLE),
    Row(
        "collection-list",
        "post",
        rule(PEOPLE, outsider=201, pull=201, push=201, admin=201),
        body=lambda ids: {"name": "mine", "pipelineIds": [ids["pipeline"]]},
    ),
    Row("collection", "get", OWN_TOKEN, kwargs=lambda ids: {"collection_id": ids["collection"]}),
    Row(
        "collection",
        "put",
        OWN_TOKEN,
        kwargs=lambda ids: {"collection_id": ids["collection"]},
        body=lambda ids: {"description": "the ones I watch"},
    ),
    Row(
        "collection",
        "delete",
        rule(OWN_TOKEN, admin=204),
        kwargs=lambda ids: {"collection_id": ids["collection"]},
    ),
    Row("token-list", "get", PEOPLE),
    Row(
        "token-list",
        "post",
        rule(PEOPLE, outsider=201, pull=201, push=201, admin=201),
        body=lambda ids: {"name": "laptop"},
    ),
    Row(
        "token",
        "put",
        OWN_TOKEN,
        kwargs=lambda ids: {"token_id": ids["user_token"]},
        body=lambda ids: {"name": "renamed"},
    ),
    Row(
        "token",
        "delete",
        rule(OWN_TOKEN, admin=204),
        kwargs=lambda ids: {"token_id": ids["user_token"]},
    ),
    Row("token-refresh", "put", OWN_TOKEN, kwargs=lambda ids: {"token_id": ids["user_token"]}),
    Row("build-detail", "get", READ, kwargs=b),
    # People abort with push; the build's own launcher may abort it too. The ended build is
    # ABORTED already, so its final report is a 409 (which the launcher accepts).
    Row(
        "build-detail",
        "put",
        rule(PUSH, build=200, ended=409),
        kwargs=b,
        body=lambda ids: {"status": "ABORTED"},
    ),
    Row("build-launch", "get", rule(REPORT, ended=403), kwargs=b),
    # The build is QUEUED: its own launcher starts it.
    Row("build-launch", "post", rule(DENIED, build=200), kwargs=b),
    Row("build-heartbeat", "post", REPORT, kwargs=b),
    Row("build-token", "post", rule(REPORT, ended=403), kwargs=b),
    # Only the build's own launcher asks; a local repository needs no credential (a 409).
    Row("build-checkout-credential", "post", rule(DENIED, build=409), kwargs=b),
    Row("build-secrets", "get", rule(PUSH, build=200), kwargs=b),
    Row("build-steps", "get", READ, kwargs=b),
    Row("build-steps", "put", REPORT, kwargs=b, body=lambda ids: [{"name": "hello", "code": 0}]),
    Row("build-step", "get", READ, kwargs=step),
    Row("build-step", "put", REPORT, kwargs=step, body=lambda ids: {"code": 0}),
    Row("build-step-logs", "get", READ, kwargs=step),
    Row("build-logs", "get", READ, kwargs=b),
    # A build's artifacts are read as its logs are.
    Row("build-artifacts", "get", READ, kwargs=b),
    Row("build-artifact", "get", READ, kwargs=artifact),
    # A capability address: its token (here the pull person's) grants, whoever calls and with
    # whatever Authorization header (builds/tests/test_artifact_view.py refuses the others).
    # The ended persona asks with its own build's id, for which that token was not made.
    Row(
        "build-artifact-view",
        "get",
        rule(PUBLIC, ended=403),
        kwargs=lambda ids: {**artifact(ids), **view(ids)},
    ),
    Row("build-artifact-view-index", "get", rule(PUBLIC, ended=403), kwargs=view),
    Row(
        "build-step-logs",
        "post",
        rule(REPORT, build=201, ended=201),
        kwargs=step,
        body=lambda ids: {"seq": 0, "firstLine": 0, "lines": [{"t": 1, "m": "x"}]},
    ),
    # Only the build's own launcher uploads, and only while its build runs: this build is
    # QUEUED and the ended one ABORTED, so both are told 409 (docs/artifacts.md).
    Row(
        "build-artifact",
        "put",
        rule(DENIED, build=409, ended=409),
        kwargs=lambda ids: {"build_id": ids["build"], "artifact_path": "reports/index.html"},
        body=lambda ids: {"any": "bytes"},
    ),
    # Caches: only the build's own launcher, while its build runs, and only the names its
    # job's `cache:` lists, which here are none: so 403 to everyone (builds/tests/test_caches).
    Row("build-cache", "get", DENIED, kwargs=cache),
    Row("build-cache", "put", DENIED, kwargs=cache, body=lambda ids: {"any": "bytes"}),
    # Clearing a pipeline's caches is for its admins.
    Row(
        "pipeline-caches",
        "delete",
        rule(DENIED, admin=204),
        kwargs=p,
        query=lambda ids: {"scope": "pipelines", "cacheId": ids["pipeline"]},
    ),
    Row(
        "build-artifacts-zip-upload",
        "put",
        rule(DENIED, build=409, ended=409),
        kwargs=b,
        body=lambda ids: {"any": "bytes"},
    ),
    Row("template-list", "get", TEMPLATE_READ),
    # Only a build of the pipeline that owns the name publishes (the world's pipeline does).
    Row(
        "template-list",
        "post",
        rule(DENIED, build=201),
        body=lambda ids: {"yaml": TEMPLATE_YAML},
    ),
    Row("template", "get", TEMPLATE_READ, kwargs=tpl),
    # The owner pipeline's admins and its builds remove it.
    Row("template", "delete", rule(DENIED, admin=204, build=204), kwargs=tpl),
    Row(
        "template-version-remove",
        "delete",
        rule(DENIED, admin=204, build=204),
        kwargs=lambda ids: {"name": "ns/tpl", "version": "1.0.0"},
    ),
    Row(
        "template-by-id",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {"template_id": ids["template"]},
    ),
    Row("template-metrics", "get", TEMPLATE_READ, kwargs=tpl),
    Row(
        "template-usage",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {"name": "ns/tpl", "version_or_tag": "stable"},
    ),
    Row("template-tags", "get", TEMPLATE_READ, kwargs=tpl),
    Row(
        "template-tag",
        "put",
        rule(DENIED, build=200),
        kwargs=lambda ids: {"name": "ns/tpl", "tag": "stable"},
        body=lambda ids: {"version": "1.0.0"},
    ),
    Row(
        "template-tag",
        "delete",
        rule(DENIED, build=204),
        kwargs=lambda ids: {"name": "ns/tpl", "tag": "stable"},
    ),
    # Only a server admin, and no persona here is one.
    Row("template-trusted", "put", DENIED, kwargs=tpl, body=lambda ids: {"trusted": True}),
    Row(
        "template-version",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {"name": "ns/tpl", "version_or_tag": "stable"},
    ),
    Row(
        "validator-template",
        "post",
        TEMPLATE_READ,
        body=lambda ids: {"yaml": TEMPLATE_YAML},
    ),
    # Commands follow the same rules as templates.
    Row("command-list", "get", TEMPLATE_READ),
    Row("command-list", "post", rule(DENIED, build=201), body=lambda ids: {"spec": COMMAND_SPEC}),
    Row("command", "get", TEMPLATE_READ, kwargs=cmd),
    Row("command", "delete", rule(DENIED, admin=204, build=204), kwargs=cmd),
    Row("command-tags", "get", TEMPLATE_READ, kwargs=cmd),
    Row(
        "command-tag",
        "put",
        rule(DENIED, build=200),
        kwargs=lambda ids: {**cmd(ids), "tag": "stable"},
        body=lambda ids: {"version": "1.0.0"},
    ),
    Row(
        "command-tag",
        "delete",
        rule(DENIED, build=204),
        kwargs=lambda ids: {**cmd(ids), "tag": "stable"},
    ),
    Row("command-trusted", "put", DENIED, kwargs=cmd, body=lambda ids: {"trusted": True}),
    Row(
        "command-version",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {**cmd(ids), "version_or_tag": "stable"},
    ),
    Row(
        "command-binary",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {**cmd(ids), "version_or_tag": "stable"},
    ),
    Row("validator-command", "post", TEMPLATE_READ, body=lambda ids: {"yaml": COMMAND_SPEC}),
    # Pipeline templates: the rules of job templates.
    Row(
        "pipeline-template-create",
        "post",
        rule(DENIED, build=201),
        body=lambda ids: {"yaml": PIPELINE_TEMPLATE_YAML},
    ),
    Row(
        "pipeline-template-validate",
        "post",
        TEMPLATE_READ,
        body=lambda ids: {"yaml": PIPELINE_TEMPLATE_YAML},
    ),
    Row("pipeline-template-list", "get", TEMPLATE_READ),
    Row(
        "pipeline-template-by-id",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {"template_id": ids["pipeline_template"]},
    ),
    Row("pipeline-template", "get", TEMPLATE_READ, kwargs=ptpl),
    Row("pipeline-template", "delete", rule(DENIED, admin=204, build=204), kwargs=ptpl),
    Row("pipeline-template-remove", "delete", rule(DENIED, admin=204, build=204), kwargs=ptpl),
    Row(
        "pipeline-template-version-remove",
        "delete",
        rule(DENIED, admin=204, build=204),
        kwargs=lambda ids: {**ptpl(ids), "version": "1.0.0"},
    ),
    Row("pipeline-template-versions", "get", TEMPLATE_READ, kwargs=ptpl),
    Row("pipeline-template-versions-alias", "get", TEMPLATE_READ, kwargs=ptpl),
    # Only a server admin, and no persona here is one.
    Row(
        "pipeline-template-trusted",
        "put",
        DENIED,
        kwargs=ptpl,
        body=lambda ids: {"trusted": True},
    ),
    Row("pipeline-template-tags", "get", TEMPLATE_READ, kwargs=ptpl),
    Row("pipeline-template-tags-alias", "get", TEMPLATE_READ, kwargs=ptpl),
    Row(
        "pipeline-template-tag-remove",
        "delete",
        rule(DENIED, build=204),
        kwargs=lambda ids: {**ptpl(ids), "tag": "stable"},
    ),
    Row(
        "pipeline-template-tag",
        "put",
        rule(DENIED, build=200),
        kwargs=lambda ids: {**ptpl(ids), "tag": "stable"},
        body=lambda ids: {"version": "1.0.0"},
    ),
    Row(
        "pipeline-template-tag",
        "delete",
        rule(DENIED, build=204),
        kwargs=lambda ids: {**ptpl(ids), "tag": "stable"},
    ),
    Row(
        "pipeline-template-version",
        "get",
        TEMPLATE_READ,
        kwargs=lambda ids: {**ptpl(ids), "version_or_tag": "stable"},
    ),
]


def api_routes() -> set[tuple[str, str]]:
    """(URL name, method) of every /v4 route the resolver knows."""
    found: set[tuple[str, str]] = set()

    def walk(patterns: list[Any], prefix: str, namespace: str) -> Iterator[None]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                ns = entry.namespace or namespace
                yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
            elif isinstance(entry, URLPattern) and prefix.startswith("v4/"):
                view = getattr(entry.callback, "view_class", None) or getattr(
                    entry.callback, "cls", None
                )
                assert entry.name, f"/{prefix}{entry.pattern} needs a URL name"
                for method in HTTP_METHODS:
                    if view is not None and hasattr(view, method):
                        found.add((entry.name, method))
                yield None

    list(walk(get_resolver().url_patterns, "", ""))
    return found


def test_every_route_has_exactly_one_row_in_the_matrix() -> None:
    declared = [(row.name, row.method) for row in MATRIX]

    assert len(declared) == len(set(declared)), "a route is declared twice"
    assert set(declared) == api_routes()


@pytest.fixture
def world(make_repo: Callable[..., GitRepo], settings: Any) -> dict[str, Any]:
    settings.SD_API_URL = "http://127.0.0.1:9"
    settings.SD_GUEST_ACCESS = True
    users = {
        name: User.objects.create_user(username=u)
        for name, u in [("outsider", "olive"), ("pull", "pat"), ("push", "pia"), ("admin", "ada")]
    }
    users["pull"].set_password("pw-4-pat!")
    users["pull"].save()
    repo = make_repo({"screwdriver.yaml": CHAIN})
    w = make_world(users["admin"], repo)
    pipeline = w.pipeline
    grant_permission(pipeline=pipeline, user=users["pull"], role="pull", granted_by="ada")
    grant_permission(pipeline=pipeline, user=users["push"], role="push", granted_by="ada")
    other = create_pipeline(
        checkout_url=make_repo({"screwdriver.yaml": CHAIN}, "other").checkout_url,
        user=users["outsider"],
    )
    other_build = main_build(new_event(other, "olive"))
    store_artifact(w.build, "reports/summary.txt", io.BytesIO(b"12 passed"))
    store_artifact(w.build, "index.html", io.BytesIO(b"<h1>12 passed</h1>"))
    ended = finish(main_build(w.done), status=BuildStatus.ABORTED, ago_seconds=60)
    # Stopped while its teardown still runs: the steps' ends are not reported yet.
    Step.objects.filter(build=ended).update(end_time=None, code=None)
    secret = create_secret(pipeline=pipeline, name="DEPLOY_KEY", value="v", allow_in_pr=False)
    old = timezone.now() - timedelta(days=1)
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "guest": issue_guest_token(),
        **{
            name: issue_user_token(username=u.username, is_admin=False) for name, u in users.items()
        },
        "pipeline": create_pipeline_token(pipeline=pipeline, name="mine").value,
        "other_pipeline": create_pipeline_token(pipeline=other, name="theirs").value,
        "build": issue_build_token(w.build),
        "other_build": issue_build_token(other_build),
        "expired": issue_user_token(username="ada", is_admin=False, now=old),
        "ended": issue_build_token(ended, now=timezone.now() - timedelta(minutes=2)),
    }
    ids = {
        **w.ids(),
        "view_token": sign_view_token(
            build_id=w.build.pk, viewer_id=users["pull"].pk, generation=generation_of(users["pull"])
        ),
        "url": repo.checkout_url,
        "spare_url": make_repo({"screwdriver.yaml": CHAIN}, "spare").checkout_url,
        "secret": secret.pk,
        "pipeline_token": create_pipeline_token(pipeline=pipeline, name="deploy").token.pk,
        "user_token": create_user_token(user=users["admin"], name="laptop").token.pk,
        "collection": create_collection(
            user=users["admin"], name="favourites", pipeline_ids=[pipeline.pk]
        ).pk,
    }
    ids["template"] = Template.objects.create(
        namespace="ns",
        name="tpl",
        version="1.0.0",
        pipeline=pipeline,
        latest=True,
        config={"image": "alpine", "steps": [{"hi": "echo hi"}]},
    ).pk
    TemplateTag.objects.create(namespace="ns", name="tpl", tag="stable", version="1.0.0")
    Command.objects.create(
        namespace="ns",
        name="cmd",
        version="1.0.0",
        format="binary",
        spec={"file": "cmd.sh"},
        binary_name=outputs().save("commands/ns/cmd/1.0.0/cmd.sh", io.BytesIO(b"echo hi")),
        binary_size=7,
        pipeline=pipeline,
        latest=True,
    )
    CommandTag.objects.create(namespace="ns", name="cmd", tag="stable", version="1.0.0")
    pipeline_template = PipelineTemplate.objects.create(
        namespace="ns", name="pipe", pipeline=pipeline, latest_version="1.0.0"
    )
    PipelineTemplateVersion.objects.create(
        template=pipeline_template, version="1.0.0", config={"jobs": {}}
    )
    PipelineTemplateTag.objects.create(template=pipeline_template, tag="stable", version="1.0.0")
    ids["pipeline_template"] = pipeline_template.pk
    assert PipelinePermission.objects.filter(pipeline=pipeline).count() == 3
    assert Secret.objects.count() == 1
    return {"tokens": tokens, "ids": ids, "ended_ids": {**ids, "build": ended.pk}}


def call(row: Row, token: str | None, ids: dict[str, Any]) -> int:
    from django.urls import reverse

    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = reverse(f"api:{row.name}", kwargs=row.kwargs(ids))
    if row.query is not None:
        url += "?" + urlencode(row.query(ids))
    body = row.body(ids) if row.body else None
    with transaction.atomic():
        if row.method == "get":
            response = client.get(url)
        else:
            response = getattr(client, row.method)(url, body, format="json")
        transaction.set_rollback(True)
    return int(response.status_code)


def test_every_route_gives_every_persona_what_the_matrix_says(world: dict[str, Any]) -> None:
    wrong, cells = [], 0
    for row in MATRIX:
        for persona in PERSONAS:
            cells += 1
            ids = world["ended_ids"] if persona == "ended" else world["ids"]
            got = call(row, world["tokens"][persona], ids)
            if got != row.expect[persona]:
                wrong.append(
                    f"{row.method.upper()} {row.name} as {persona}: {got}, "
                    f"expected {row.expect[persona]}"
                )

    assert wrong == [], "\n".join(wrong)
    assert cells == len(MATRIX) * len(PERSONAS)
    assert Build.objects.filter(status=BuildStatus.QUEUED).count() == 2  # nothing leaked


def test_the_matrix_is_large_enough_to_mean_something() -> None:
    assert len(MATRIX) * len(PERSONAS) >= 700
