"""Short-lived clone credentials: a GitHub App's installation token and a GitLab deploy token
issued for one build, what the requests for them look like, and what the build's launcher is
answered (builds/services/credentials.py).

The fake GitHub checks the app's JWT with the app's public key and the fake GitLab issues and
revokes deploy tokens; both run in a thread of the test, no git is spawned.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from builds.launch import launch_spec
from builds.models import Build, BuildStatus, Step
from builds.services import (
    clone_credential_name,
    mark_running,
    retry_lost_build,
    revoke_checkout_credential,
)
from pipelines.models import Event, Job, Pipeline, PipelinePermission
from scm.base import ScmError
from scm.github import GitHubScm
from scm.gitlab import GitLabScm
from scm.tests.github_server import FakeGitHub
from scm.tests.gitlab_server import FakeGitLab
from screwdriver_site.tokens import issue_build_token

pytestmark = pytest.mark.django_db

CREDENTIAL = "/v4/builds/{}/checkout-credential"
GITHUB_TOKEN = "ghp_operatorTokenNotForClones5e8d1c"
_names = itertools.count()


@pytest.fixture
def github(
    settings: Any,
    tmp_path: Path,
    github_server: tuple[str, FakeGitHub],
    github_app: FakeGitHub,
) -> FakeGitHub:
    """A GitHub whose app is installed on octo-org/app (installation 7), a private repository."""
    settings.SD_GITHUB_API_URL = f"{github_server[0]}/api/v3"
    settings.SD_GITHUB_TOKEN = GITHUB_TOKEN
    github_app.repos["octo-org/app"] = tmp_path
    github_app.private.add("octo-org/app")
    github_app.installations["octo-org/app"] = 7
    return github_app


@pytest.fixture
def gitlab(
    settings: Any, tmp_path: Path, gitlab_server: tuple[str, FakeGitLab]
) -> tuple[str, FakeGitLab]:
    """A GitLab whose private project group/app the server's token maintains."""
    base, fake = gitlab_server
    settings.SD_GITLAB_URL = base
    # The token the fake GitLab takes for its API (gitlab_server).
    settings.SD_GITLAB_TOKEN = fake.credential[1]
    fake.repos["group/app"] = tmp_path
    fake.private.add("group/app")
    fake.credential_clones = False
    return base, fake


def github_ref() -> Any:
    return GitHubScm().parse_url("https://127.0.0.1/octo-org/app.git#main")


def make_build(url: str, context: str, *, private: bool = True) -> Build:
    """A RUNNING build of a pipeline on `context`, before its own step started."""
    n = next(_names)
    pipeline = Pipeline.objects.create(
        name=f"app{n}",
        scm_uri=f"{context}:app{n}:main",
        scm_context=context,
        checkout_url=url,
        scm_repo={"branch": "main", "private": private},
    )
    owner, _ = User.objects.get_or_create(username="alice")
    PipelinePermission.objects.create(pipeline=pipeline, user=owner, role="admin")
    config = {"image": "alpine", "steps": [{"build": "make"}]}
    job = Job.objects.create(pipeline=pipeline, name="main", permutations=[config])
    event = Event.objects.create(
        pipeline=pipeline,
        sha="a" * 40,
        start_from="~commit",
        workflow_graph={"nodes": [{"name": "~commit"}, {"name": "main"}], "edges": []},
        status=Event.Status.IN_PROGRESS,
    )
    build = Build.objects.create(
        job=job, event=event, number=1, sha=event.sha, status=BuildStatus.RUNNING
    )
    Step.objects.create(build=build, position=0, name="sd-setup-scm")
    Step.objects.create(build=build, position=1, name="build")
    return build


def allow_one_retry(build: Build) -> None:
    """Let the build's job run again once when the infrastructure loses it."""
    Job.objects.filter(pk=build.job_id).update(
        permutations=[
            {
                "image": "alpine",
                "steps": [{"build": "make"}],
                "annotations": {"screwdriver.cd/retries": 1},
            }
        ]
    )


def ask(build: Build) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(build)}")
    return client.post(CREDENTIAL.format(build.pk))


# --- GitHub App ------------------------------------------------------------------------------


def test_an_installation_token_is_asked_for_one_repository_read_only(github: FakeGitHub) -> None:
    before = time.time()
    minted = GitHubScm().mint_clone_credential(github_ref(), name="unused")
    after = time.time()
    assert github.app_requests == [
        ("GET /repos/octo-org/app/installation", None),
        (
            "POST /app/installations/7/access_tokens",
            {"repositories": ["app"], "permissions": {"contents": "read"}},
        ),
    ]
    # Both requests carried the app's JWT: issued a minute ago, for ten minutes.
    assert len(github.app_claims) == 2
    for claims in github.app_claims:
        assert claims["iss"] == github.app_id
        assert before - 61 <= claims["iat"] <= after - 59
        assert claims["exp"] - claims["iat"] == 600
    assert minted.username == "x-access-token"
    issued = github.issued[minted.password]
    assert issued.repos == {"octo-org/app"}
    assert minted.expires_at is not None
    assert abs((minted.expires_at - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(minutes=1)
    assert minted.password not in repr(minted)


def test_an_app_not_installed_on_the_repository_is_said_plainly(github: FakeGitHub) -> None:
    github.installations.clear()
    with pytest.raises(ScmError) as refused:
        GitHubScm().mint_clone_credential(github_ref(), name="unused")
    assert str(refused.value) == (
        f"The GitHub App {github.app_id} is not installed on octo-org/app: install it on the "
        "repository (or its organization) for builds to clone it."
    )
    assert not github.issued


def test_a_jwt_of_another_app_is_refused(github: FakeGitHub, settings: Any) -> None:
    settings.SD_GITHUB_APP_ID = "999"
    with pytest.raises(ScmError) as refused:
        GitHubScm().mint_clone_credential(github_ref(), name="unused")
    assert "refused to give the GitHub App 999 its installation on octo-org/app (401)" in str(
        refused.value
    )


@pytest.mark.parametrize("content", [None, b"not a key", b"-----BEGIN PRIVATE KEY-----\nx\n"])
def test_an_unusable_app_key_file_is_the_operators_to_fix(
    github: FakeGitHub, settings: Any, tmp_path: Path, content: bytes | None
) -> None:
    key = tmp_path / "other.pem"
    if content is not None:
        key.write_bytes(content)
    settings.SD_GITHUB_APP_PRIVATE_KEY_FILE = str(key)
    with pytest.raises(ScmError, match="SD_GITHUB_APP_PRIVATE_KEY_FILE") as refused:
        GitHubScm().mint_clone_credential(github_ref(), name="unused")
    assert "the operator must" in str(refused.value)
    assert github.app_requests == []


def test_an_unused_installation_token_is_revoked_with_itself(github: FakeGitHub) -> None:
    scm = GitHubScm()
    minted = scm.mint_clone_credential(github_ref(), name="unused")
    scm.revoke_clone_credential(github_ref(), minted)
    assert github.revoked == [minted.password] and not github.issued
    # Revoked twice is no error.
    scm.revoke_clone_credential(github_ref(), minted)


def test_an_app_build_gets_an_installation_token_once(github: FakeGitHub) -> None:
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    spec = launch_spec(build)
    assert spec["checkout"]["auth"] == "token"
    first = ask(build)
    assert first.status_code == 200, first.content
    (token,) = github.issued
    assert first.json() == {"type": "token", "username": "x-access-token", "password": token}
    # Neither the operator's token nor a value of any kind went into the spec.
    assert GITHUB_TOKEN not in json.dumps(spec) and token not in json.dumps(spec)
    asked = len(github.app_requests)
    again = ask(build)
    assert again.status_code == 409 and "handed out already" in again.json()["message"]
    # The second request made GitHub issue nothing.
    assert len(github.app_requests) == asked and len(github.issued) == 1


def test_an_app_build_of_a_public_repository_clones_without_a_credential(
    github: FakeGitHub,
) -> None:
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1", private=False)
    assert "auth" not in launch_spec(build)["checkout"]
    answer = ask(build)
    assert answer.status_code == 409 and "clones without a credential" in answer.json()["message"]
    assert github.app_requests == []


def test_a_refused_installation_refuses_the_build_for_good(github: FakeGitHub) -> None:
    github.installations.clear()
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    answer = ask(build)
    assert answer.status_code == 409
    assert answer.json()["message"].startswith(
        f"The GitHub App {github.app_id} is not installed on octo-org/app"
    )
    # Nothing is left to ask for: a teardown step holding the build token gets nothing more.
    assert "handed out already" in ask(build).json()["message"]


def test_an_unreachable_github_may_be_asked_again(github: FakeGitHub, settings: Any) -> None:
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    reachable = settings.SD_GITHUB_API_URL
    settings.SD_GITHUB_API_URL = "http://127.0.0.1:9/api/v3"
    answer = ask(build)
    assert answer.status_code == 503
    assert answer.json()["message"].startswith("GitHub did not answer")
    settings.SD_GITHUB_API_URL = reachable
    assert ask(build).status_code == 200


# --- GitLab deploy tokens --------------------------------------------------------------------


def test_a_deploy_token_reads_the_repository_for_an_hour_and_is_revoked_by_name(
    gitlab: tuple[str, FakeGitLab],
) -> None:
    base, fake = gitlab
    scm = GitLabScm()
    ref = scm.parse_url(f"{base}/group/app.git#main")
    minted = scm.mint_clone_credential(ref, name="screwdriver-build-7 (cd.example.com)")
    (body,) = fake.deploy_token_requests
    assert set(body) == {"name", "scopes", "expires_at"}
    assert body["name"] == "screwdriver-build-7 (cd.example.com)"
    assert body["scopes"] == ["read_repository"]
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(UTC) - timedelta(hours=1)) < timedelta(minutes=1)
    assert (minted.username, minted.token_id) == ("gitlab+deploy-token-1", "1")
    assert fake.issued[minted.password].repos == {"group/app"}
    assert minted.password not in repr(minted)

    assert scm.revoke_clone_credentials_named(ref, name="another name") == 0
    assert scm.revoke_clone_credentials_named(ref, name=body["name"]) == 1
    assert fake.deploy_tokens[1]["revoked"] is True and not fake.issued
    assert scm.revoke_clone_credentials_named(ref, name=body["name"]) == 0


def test_a_gitlab_token_without_maintainer_rights_is_said_in_one_sentence(
    gitlab: tuple[str, FakeGitLab],
) -> None:
    base, fake = gitlab
    fake.deploy_token_rights = False
    scm = GitLabScm()
    with pytest.raises(ScmError) as refused:
        scm.mint_clone_credential(scm.parse_url(f"{base}/group/app.git#main"), name="x")
    assert str(refused.value) == (
        "GitLab refused a deploy token for group/app (403): SD_GITLAB_TOKEN needs the "
        "Maintainer role on the project, or the operator may set "
        "SD_GITLAB_CLONE_CREDENTIAL=operator-token to clone with it instead."
    )


def test_a_gitlab_build_gets_a_deploy_token_revoked_when_it_ends(
    gitlab: tuple[str, FakeGitLab],
) -> None:
    base, fake = gitlab
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    answer = ask(build)
    assert answer.status_code == 200, answer.content
    (row,) = fake.deploy_tokens.values()
    assert row["name"] == clone_credential_name(build.pk)
    assert answer.json() == {
        "type": "token",
        "username": "gitlab+deploy-token-1",
        "password": row["token"],
    }
    assert fake.credential[1] not in answer.content.decode()
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    assert revoke_checkout_credential(build_id=build.pk) == 1
    assert row["revoked"] is True and not fake.issued
    # The outbox may run it again: nothing is left.
    assert revoke_checkout_credential(build_id=build.pk) == 0


def test_a_retried_builds_new_launcher_gets_its_own_token_and_the_lost_ones_is_refused(
    gitlab: tuple[str, FakeGitLab],
) -> None:
    base, fake = gitlab
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    allow_one_retry(build)
    lost = APIClient()
    lost.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_build_token(build)}")
    assert lost.post(CREDENTIAL.format(build.pk)).status_code == 200

    # Its lease lapsed; the reaper queues the build again and a new launcher starts it.
    assert retry_lost_build(build_id=build.pk, message="The build was lost.")
    mark_running(build_id=build.pk)
    build.refresh_from_db()
    refused = lost.post(CREDENTIAL.format(build.pk))
    assert refused.status_code == 401
    assert "earlier attempt" in refused.json()["message"]
    assert lost.get(f"/v4/builds/{build.pk}/steps").status_code == 401
    again = ask(build)
    assert again.status_code == 200, again.content
    first, second = fake.deploy_tokens.values()
    assert again.json()["password"] == second["token"] != first["token"]

    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    assert revoke_checkout_credential(build_id=build.pk) == 2
    assert first["revoked"] and second["revoked"]


def test_a_retried_build_revokes_what_its_lost_attempt_took_even_if_the_next_took_none(
    gitlab: tuple[str, FakeGitLab],
) -> None:
    base, fake = gitlab
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    allow_one_retry(build)
    assert ask(build).status_code == 200
    assert retry_lost_build(build_id=build.pk, message="The build was lost.")
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.FAILURE)
    assert revoke_checkout_credential(build_id=build.pk) == 1
    (row,) = fake.deploy_tokens.values()
    assert row["revoked"] is True


def test_a_build_that_got_no_credential_revokes_nothing(gitlab: tuple[str, FakeGitLab]) -> None:
    base, fake = gitlab
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    assert revoke_checkout_credential(build_id=build.pk) == 0
    assert fake.deploy_token_requests == [] and fake.unknown == []


def test_a_gitlab_refusal_refuses_the_build_with_its_reason(gitlab: tuple[str, FakeGitLab]) -> None:
    base, fake = gitlab
    fake.deploy_token_rights = False
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    answer = ask(build)
    assert answer.status_code == 409
    assert answer.json()["message"].startswith("GitLab refused a deploy token for group/app (403)")


def test_the_operator_may_choose_the_operator_token_for_gitlab(
    gitlab: tuple[str, FakeGitLab], settings: Any
) -> None:
    base, fake = gitlab
    settings.SD_GITLAB_CLONE_CREDENTIAL = "operator-token"
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    answer = ask(build)
    assert answer.json() == {"type": "token", "username": "oauth2", "password": fake.credential[1]}
    assert fake.deploy_token_requests == []


# --- A child pipeline's parent repository ($SD_CONFIG_DIR) -----------------------------------


PARENT_SHA = "b" * 40


def make_child(build: Build, parent_url: str, context: str, *, private: bool = True) -> Build:
    """Make `build`'s pipeline a child of a pipeline of `parent_url`, its event read at
    PARENT_SHA; return the build anew."""
    n = next(_names)
    parent = Pipeline.objects.create(
        name=f"parent{n}",
        scm_uri=f"{context}:parent{n}:main",
        scm_context=context,
        checkout_url=parent_url,
        scm_repo={"branch": "main", "private": private},
    )
    Pipeline.objects.filter(pk=build.job.pipeline_id).update(config_pipeline=parent)
    Event.objects.filter(pk=build.event_id).update(config_pipeline_sha=PARENT_SHA)
    return Build.objects.get(pk=build.pk)


def test_a_childs_build_gets_an_installation_token_of_its_own_for_its_private_parent(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.repos["octo-org/parent"] = tmp_path
    github.private.add("octo-org/parent")
    github.installations["octo-org/parent"] = 7
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    build = make_child(build, "https://127.0.0.1/octo-org/parent.git#main", "github:127.0.0.1")
    spec = launch_spec(build)
    assert spec["configCheckout"] == {
        "url": spec["configCheckout"]["url"],
        "branch": "main",
        "sha": PARENT_SHA,
        "auth": "token",
    }
    assert spec["configCheckout"]["url"].endswith("/octo-org/parent.git")

    answer = ask(build)
    assert answer.status_code == 200, answer.content
    own, parent = answer.json()["password"], answer.json()["configCheckout"]["password"]
    assert answer.json() == {
        "type": "token",
        "username": "x-access-token",
        "password": own,
        "configCheckout": {"type": "token", "username": "x-access-token", "password": parent},
    }
    # Each reads its one repository: neither build's clone opens the other's.
    assert github.issued[own].repos == {"octo-org/app"}
    assert github.issued[parent].repos == {"octo-org/parent"}
    assert own not in json.dumps(spec) and parent not in json.dumps(spec)
    assert "handed out already" in ask(build).json()["message"]


def test_a_public_childs_build_gets_only_its_private_parents_credential(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.repos["octo-org/parent"] = tmp_path
    github.private.add("octo-org/parent")
    github.installations["octo-org/parent"] = 7
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1", private=False)
    build = make_child(build, "https://127.0.0.1/octo-org/parent.git#main", "github:127.0.0.1")
    spec = launch_spec(build)
    assert "auth" not in spec["checkout"] and spec["configCheckout"]["auth"] == "token"

    answer = ask(build)
    assert answer.status_code == 200, answer.content
    (token,) = github.issued
    assert answer.json() == {
        "configCheckout": {"type": "token", "username": "x-access-token", "password": token}
    }
    assert github.issued[token].repos == {"octo-org/parent"}


def test_a_public_parent_is_cloned_without_a_credential(github: FakeGitHub) -> None:
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    build = make_child(
        build, "https://127.0.0.1/octo-org/parent.git#main", "github:127.0.0.1", private=False
    )
    assert "auth" not in launch_spec(build)["configCheckout"]
    answer = ask(build)
    assert answer.status_code == 200 and "configCheckout" not in answer.json()
    assert len(github.issued) == 1


def test_a_parent_the_app_cannot_read_refuses_the_build_and_revokes_its_own_token(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.repos["octo-org/parent"] = tmp_path
    github.private.add("octo-org/parent")
    build = make_build("https://127.0.0.1/octo-org/app.git#main", "github:127.0.0.1")
    build = make_child(build, "https://127.0.0.1/octo-org/parent.git#main", "github:127.0.0.1")

    answer = ask(build)
    assert answer.status_code == 409
    assert answer.json()["message"].startswith(
        f"The GitHub App {github.app_id} is not installed on octo-org/parent"
    )
    # The build's own token, issued first, was revoked: nobody holds a credential now.
    assert github.issued == {} and len(github.revoked) == 1
    assert "handed out already" in ask(build).json()["message"]


def test_a_gitlab_childs_build_gets_a_deploy_token_of_the_parent_revoked_with_its_own(
    gitlab: tuple[str, FakeGitLab], tmp_path: Path
) -> None:
    base, fake = gitlab
    fake.repos["group/parent"] = tmp_path
    fake.private.add("group/parent")
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    build = make_child(build, f"{base}/group/parent.git#main", "gitlab:x")

    answer = ask(build)
    assert answer.status_code == 200, answer.content
    own, parent = sorted(fake.deploy_tokens.values(), key=lambda row: row["project"] != "group/app")
    assert (own["project"], parent["project"]) == ("group/app", "group/parent")
    assert own["name"] == parent["name"] == clone_credential_name(build.pk)
    assert answer.json()["password"] == own["token"]
    assert answer.json()["configCheckout"] == {
        "type": "token",
        "username": parent["username"],
        "password": parent["token"],
    }
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.SUCCESS)
    assert revoke_checkout_credential(build_id=build.pk) == 2
    assert own["revoked"] and parent["revoked"] and not fake.issued


def test_a_parents_deploy_token_is_revoked_even_when_the_childs_project_refuses(
    gitlab: tuple[str, FakeGitLab], tmp_path: Path
) -> None:
    base, fake = gitlab
    fake.repos["group/parent"] = tmp_path
    fake.private.add("group/parent")
    build = make_build(f"{base}/group/app.git#main", "gitlab:x")
    build = make_child(build, f"{base}/group/parent.git#main", "gitlab:x")
    assert ask(build).status_code == 200
    # The child's project is gone (or no longer lets the server's token list its tokens).
    del fake.repos["group/app"]
    Build.objects.filter(pk=build.pk).update(status=BuildStatus.FAILURE)

    with pytest.raises(ScmError, match="group/app"):
        revoke_checkout_credential(build_id=build.pk)
    parent = next(row for row in fake.deploy_tokens.values() if row["project"] == "group/parent")
    assert parent["revoked"]
