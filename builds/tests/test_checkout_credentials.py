"""The credential a build clones a private repository with: only its own launcher gets it,
once, while the build runs and before its steps; the spec and the server keep none of it."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.launch import launch_spec
from builds.models import Build, BuildStatus, Step
from builds.secrets import masker_for
from pipelines.encryption import decrypt
from pipelines.models import DeployKey, Event, Job, Pipeline, PipelinePermission
from pipelines.services import ensure_deploy_key
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

TOKEN = "ghp_operatorTokenForClones0123456789"
_names = itertools.count()
CREDENTIAL = "/v4/builds/{}/checkout-credential"


@pytest.fixture(autouse=True)
def operator_tokens(settings: Any) -> None:
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_GITHUB_TOKEN = TOKEN
    settings.SD_GITLAB_URL = "https://gitlab.example.com"
    settings.SD_GITLAB_TOKEN = "glpat-operatorTokenForClones"
    # The operator's own tokens, as chosen here; the short-lived ones are in
    # scm/tests/test_clone_credentials.py.
    settings.SD_GITHUB_APP_ID = ""
    settings.SD_GITLAB_CLONE_CREDENTIAL = "operator-token"


def make_build(
    *,
    url: str = "https://github.com/octo-org/app.git#main",
    context: str = "github:github.com",
    status: str = BuildStatus.RUNNING,
    annotations: dict[str, Any] | None = None,
    environment: dict[str, str] | None = None,
) -> Build:
    """A build of a pipeline on `context`, with its setup step and one step of its own."""
    n = next(_names)
    pipeline = Pipeline.objects.create(
        name=f"octo-org/app{n}",
        scm_uri=f"{context}:octo-org/app{n}:main",
        scm_context=context,
        checkout_url=url,
        scm_repo={"branch": "main", "private": True},
        annotations=annotations or {},
    )
    owner, _ = User.objects.get_or_create(username="alice")
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    config = {"image": "alpine", "steps": [{"build": "make"}], "environment": environment or {}}
    job = Job.objects.create(pipeline=pipeline, name="main", permutations=[config])
    event = Event.objects.create(
        pipeline=pipeline,
        sha="a" * 40,
        start_from="~commit",
        workflow_graph={"nodes": [{"name": "~commit"}, {"name": "main"}], "edges": []},
        status=Event.Status.IN_PROGRESS,
    )
    build = Build.objects.create(job=job, event=event, number=1, sha=event.sha, status=status)
    Step.objects.create(build=build, position=0, name="sd-setup-scm")
    Step.objects.create(build=build, position=1, name="build")
    return build


def launcher(build: Build) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(build)}")
    return client


def test_the_builds_own_launcher_gets_the_operators_token_once() -> None:
    build = make_build()
    client = launcher(build)
    first = client.post(CREDENTIAL.format(build.pk))
    assert first.status_code == 200, first.content
    assert first.json() == {"type": "token", "username": "x-access-token", "password": TOKEN}
    assert first["Cache-Control"] == "no-store"
    again = client.post(CREDENTIAL.format(build.pk))
    assert again.status_code == 409
    assert "handed out already" in again.json()["message"]
    assert TOKEN not in again.content.decode()


def test_a_gitlab_build_chosen_to_clone_with_the_operators_token_gets_it_as_oauth2() -> None:
    build = make_build(url="https://gitlab.example.com/group/app.git#main", context="gitlab:x")
    answer = launcher(build).post(CREDENTIAL.format(build.pk)).json()
    assert answer == {
        "type": "token",
        "username": "oauth2",
        "password": "glpat-operatorTokenForClones",
    }


def test_another_builds_token_a_persons_token_and_no_token_are_refused() -> None:
    build, other = make_build(), make_build()
    assert launcher(other).post(CREDENTIAL.format(build.pk)).status_code == 403
    person = APIClient()
    person.force_authenticate(User.objects.get(username="alice"))
    assert person.post(CREDENTIAL.format(build.pk)).status_code == 403
    assert APIClient().post(CREDENTIAL.format(build.pk)).status_code == 401
    # None of those used up the one answer.
    assert launcher(build).post(CREDENTIAL.format(build.pk)).status_code == 200


@pytest.mark.parametrize("status", [BuildStatus.SUCCESS, BuildStatus.ABORTED])
def test_a_finished_builds_token_gets_nothing(status: str) -> None:
    build = make_build(status=status)
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 403
    assert TOKEN not in answer.content.decode()


def test_a_build_that_is_not_running_yet_gets_nothing() -> None:
    build = make_build(status=BuildStatus.QUEUED)
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 409
    assert "handed out only while it runs" in answer.json()["message"]


def test_a_local_pipelines_build_needs_and_gets_no_credential() -> None:
    build = make_build(url="/srv/git/app.git#main", context="local")
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 409
    assert "is on this server: it is cloned without a credential" in answer.json()["message"]
    assert "auth" not in launch_spec(build)["checkout"]


def test_a_job_that_skips_the_clone_gets_nothing() -> None:
    build = make_build(environment={"SD_SKIP_REPOSITORY_CLONE": "true"})
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 409
    assert "skips the clone" in answer.json()["message"]


def test_once_a_step_of_the_build_started_the_credential_is_refused() -> None:
    # A step holds the build token (SD_TOKEN): it must never be able to ask for the token.
    build = make_build()
    Step.objects.filter(build=build, name="build").update(start_time=build.created_at)
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 409
    assert "started its own steps" in answer.json()["message"]


def test_the_launch_spec_names_the_kind_of_credential_never_its_value() -> None:
    build = make_build()
    spec = launch_spec(build)
    assert spec["checkout"]["auth"] == "token"
    assert spec["checkout"]["url"] == "https://github.com/octo-org/app.git"
    assert TOKEN not in json.dumps(spec)
    shown = launcher(build).get(f"/v4/builds/{build.pk}/launch")
    assert shown.status_code == 200 and TOKEN not in shown.content.decode()


def test_without_an_operator_token_a_github_build_clones_anonymously(settings: Any) -> None:
    settings.SD_GITHUB_TOKEN = ""
    build = make_build()
    assert "auth" not in launch_spec(build)["checkout"]
    answer = launcher(build).post(CREDENTIAL.format(build.pk))
    assert answer.status_code == 409
    assert answer.json()["message"].startswith("The server has no token for github:")


def test_the_server_masks_the_token_in_what_the_build_reports() -> None:
    build = make_build()
    masker = masker_for(build)
    assert masker(f"cloning with {TOKEN}".encode()) == b"cloning with ****"


@pytest.fixture
def deploy_keys(settings: Any) -> None:
    settings.SD_DEPLOY_KEYS = True


@pytest.mark.usefixtures("deploy_keys")
def test_a_deploy_key_pipeline_clones_over_ssh_and_its_launcher_gets_the_private_key() -> None:
    build = make_build(annotations={"screwdriver.cd/useDeployKey": True})
    pipeline = build.job.pipeline
    key = ensure_deploy_key(pipeline=pipeline)
    assert key is not None
    spec = launch_spec(build)["checkout"]
    assert (spec["auth"], spec["url"]) == ("sshKey", "git@github.com:octo-org/app.git")
    private = decrypt(key.encrypted_private_key)
    assert private not in json.dumps(launch_spec(build))
    answer = launcher(build).post(CREDENTIAL.format(build.pk)).json()
    assert answer == {"type": "sshKey", "privateKey": private, "knownHosts": ""}
    assert masker_for(build)(private.splitlines()[1].encode()) == b"****"


@pytest.mark.usefixtures("deploy_keys")
def test_the_operators_known_hosts_go_with_the_deploy_key(settings: Any, tmp_path: Any) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoq\n")
    settings.SD_SSH_KNOWN_HOSTS = str(known)
    build = make_build(annotations={"screwdriver.cd/useDeployKey": "true"})
    ensure_deploy_key(pipeline=build.job.pipeline)
    answer = launcher(build).post(CREDENTIAL.format(build.pk)).json()
    assert answer["knownHosts"] == known.read_text()


def test_without_the_operators_consent_the_annotation_makes_no_key(settings: Any) -> None:
    settings.SD_DEPLOY_KEYS = False
    build = make_build(annotations={"screwdriver.cd/useDeployKey": True})
    assert ensure_deploy_key(pipeline=build.job.pipeline) is None
    assert not DeployKey.objects.exists()
    assert launch_spec(build)["checkout"]["auth"] == "token"


@pytest.mark.usefixtures("deploy_keys")
def test_the_server_masks_a_parents_deploy_key_in_what_its_childs_build_reports() -> None:
    parent = make_build(annotations={"screwdriver.cd/useDeployKey": True}).job.pipeline
    key = ensure_deploy_key(pipeline=parent)
    assert key is not None
    build = make_build()
    Pipeline.objects.filter(pk=build.job.pipeline_id).update(config_pipeline=parent)
    Event.objects.filter(pk=build.event_id).update(config_pipeline_sha="b" * 40)
    build = Build.objects.get(pk=build.pk)
    # The child's launcher is handed the parent's key to clone it into $SD_CONFIG_DIR.
    answer = launcher(build).post(CREDENTIAL.format(build.pk)).json()
    private = decrypt(key.encrypted_private_key)
    assert answer["configCheckout"]["privateKey"] == private
    assert masker_for(build)(private.splitlines()[1].encode()) == b"****"
