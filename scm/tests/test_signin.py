"""Sign-in with GitHub and GitLab through django-allauth, the token kept encrypted.

allauth talks to the providers with `requests`, so their token and user endpoints are answered
at that HTTP boundary by `responses` (respx answers httpx, which our own SCM clients use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import responses
import respx
from allauth.socialaccount.models import SocialAccount, SocialLogin, SocialToken
from allauth.socialaccount.signals import social_account_removed
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from responses import matchers

from pipelines.encryption import decrypt
from pipelines.models import Pipeline
from scm.adapters import ScmSocialAccountAdapter
from scm.models import ScmAccount, ScmRole

pytestmark = pytest.mark.django_db

GITHUB_TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"
GITLAB_TOKEN = "glpat-Xf3kq9-secret-gitlab-token"
GITLAB_URL = "https://gitlab.example.com"


@pytest.fixture(autouse=True)
def providers(settings: Any) -> None:
    """Both OAuth apps configured, as SD_GITHUB_CLIENT_ID/SD_GITLAB_CLIENT_ID would."""
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_GITLAB_URL = GITLAB_URL
    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {
            "APPS": [{"client_id": "gh-client", "secret": "gh-secret"}],
            "SCOPE": ["repo", "user:email"],
        },
        "gitlab": {
            "APPS": [{"client_id": "gl-client", "secret": "gl-secret"}],
            "SCOPE": ["read_api", "read_user"],
            "GITLAB_URL": GITLAB_URL,
        },
    }


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """The providers' endpoints; any request not answered here fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def start(client: Client, provider: str) -> tuple[str, dict[str, list[str]]]:
    """POST the sign-in button; return where the browser is sent and its query."""
    response = client.post(f"/accounts/{provider}/login/")
    assert response.status_code == 302, response.content
    location = response["Location"]
    return location, parse_qs(urlsplit(location).query)


def github_answers(http: responses.RequestsMock, token: str = GITHUB_TOKEN) -> None:
    http.post(
        "https://github.com/login/oauth/access_token",
        json={"access_token": token, "token_type": "bearer", "scope": "repo,read:org"},
    )
    http.get(
        "https://api.github.com/user",
        json={"id": 583231, "login": "octocat", "name": "The Octocat", "email": None},
        match=[matchers.header_matcher({"Authorization": f"token {token}"})],
    )


def sign_in_with_github(client: Client, http: responses.RequestsMock, token: str) -> Any:
    _, query = start(client, "github")
    github_answers(http, token)
    return client.get(
        "/accounts/github/login/callback/", {"code": "gh-code", "state": query["state"][0]}
    )


def sign_in_with_gitlab(client: Client, http: responses.RequestsMock) -> Any:
    _, query = start(client, "gitlab")
    http.post(
        f"{GITLAB_URL}/oauth/token",
        json={"access_token": GITLAB_TOKEN, "token_type": "Bearer", "expires_in": 7200},
    )
    http.get(
        f"{GITLAB_URL}/api/v4/user",
        json={"id": 77, "username": "gitlabber", "name": "Git Labber", "email": "gl@example.com"},
    )
    return client.get(
        "/accounts/gitlab/login/callback/", {"code": "gl-code", "state": query["state"][0]}
    )


def raw_token_column() -> str:
    """The stored column as the database holds it, bypassing the model."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_token FROM scm_scmaccount")
        (value,) = cursor.fetchone()
    return str(value)


def test_the_github_button_sends_the_browser_to_github_with_the_configured_app_and_scopes(
    client: Client,
) -> None:
    location, query = start(client, "github")

    assert location.startswith("https://github.com/login/oauth/authorize?")
    assert query["client_id"] == ["gh-client"]
    assert set(query["scope"][0].split()) == {"repo", "user:email"}
    assert query["redirect_uri"] == ["http://testserver/accounts/github/login/callback/"]


def test_signing_in_with_github_creates_the_person_signs_them_in_and_keeps_the_token_encrypted(
    client: Client, http: responses.RequestsMock
) -> None:
    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert response.status_code == 302
    assert response["Location"] == reverse("pipelines:list")
    user = User.objects.get(username="octocat")
    assert client.session["_auth_user_id"] == str(user.pk)
    account = ScmAccount.objects.get(user=user)
    assert (account.scm_context, account.username) == ("github:github.com", "octocat")
    assert GITHUB_TOKEN not in raw_token_column()
    assert decrypt(raw_token_column()) == GITHUB_TOKEN
    # allauth itself keeps no copy of the token.
    assert not SocialToken.objects.exists()
    assert SocialAccount.objects.get(user=user).uid == "583231"
    assert client.get(reverse("pipelines:list")).status_code == 200
    exchange = http.calls[0].request
    assert "code=gh-code" in str(exchange.body) and "client_secret=gh-secret" in str(exchange.body)


def test_signing_in_again_replaces_the_stored_token_for_the_same_person(
    client: Client, http: responses.RequestsMock
) -> None:
    sign_in_with_github(client, http, GITHUB_TOKEN)
    client.logout()
    http.reset()

    response = sign_in_with_github(client, http, "gho_a-newer-token")

    assert response.status_code == 302
    assert User.objects.filter(username="octocat").count() == 1
    assert decrypt(ScmAccount.objects.get().encrypted_token) == "gho_a-newer-token"
    assert client.session["_auth_user_id"] == str(User.objects.get(username="octocat").pk)


def test_a_github_user_named_like_a_local_account_gets_an_account_of_their_own(
    client: Client, http: responses.RequestsMock
) -> None:
    local = User.objects.create_user("octocat", password="pw-local-1")

    sign_in_with_github(client, http, GITHUB_TOKEN)

    person = User.objects.get(pk=int(client.session["_auth_user_id"]))
    assert person != local
    assert ScmAccount.objects.get().user == person
    assert not ScmAccount.objects.filter(user=local).exists()


def test_signing_in_with_gitlab_uses_the_configured_gitlab_and_keeps_the_token_encrypted(
    client: Client, http: responses.RequestsMock
) -> None:
    location, query = start(client, "gitlab")
    assert location.startswith(f"{GITLAB_URL}/oauth/authorize?")
    assert set(query["scope"][0].split()) == {"read_api", "read_user"}
    http.post(
        f"{GITLAB_URL}/oauth/token",
        json={"access_token": GITLAB_TOKEN, "token_type": "Bearer", "expires_in": 7200},
    )
    http.get(
        f"{GITLAB_URL}/api/v4/user",
        json={"id": 77, "username": "gitlabber", "name": "Git Labber", "email": "gl@example.com"},
        match=[matchers.query_param_matcher({"access_token": GITLAB_TOKEN})],
    )

    response = client.get(
        "/accounts/gitlab/login/callback/", {"code": "gl-code", "state": query["state"][0]}
    )

    assert response.status_code == 302
    user = User.objects.get(username="gitlabber")
    assert client.session["_auth_user_id"] == str(user.pk)
    account = ScmAccount.objects.get(user=user)
    assert account.scm_context == "gitlab:gitlab.example.com"
    assert GITLAB_TOKEN not in raw_token_column()
    assert decrypt(raw_token_column()) == GITLAB_TOKEN


def test_a_callback_with_a_forged_state_signs_nobody_in(client: Client) -> None:
    start(client, "github")

    response = client.get(
        "/accounts/github/login/callback/", {"code": "gh-code", "state": "forged"}
    )

    assert "_auth_user_id" not in client.session
    assert response.status_code == 401
    assert not ScmAccount.objects.exists()
    # allauth's error page is drawn in our own layout.
    assert "· Screwdriver</title>" in response.content.decode()


def test_the_login_page_shows_a_button_per_configured_provider(
    client: Client, settings: Any
) -> None:
    page = client.get("/login/").content.decode()
    assert 'action="/accounts/github/login/"' in page and "Sign in with GitHub" in page
    assert 'action="/accounts/gitlab/login/"' in page and "Sign in with GitLab" in page
    assert page.count("csrfmiddlewaretoken") == 3

    settings.SOCIALACCOUNT_PROVIDERS = {}
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page
    assert 'name="username"' in page and 'name="password"' in page


def test_an_unconfigured_provider_is_not_found(client: Client, settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = {}

    for path in ("/accounts/github/login/", "/accounts/gitlab/login/callback/"):
        assert client.get(path).status_code == 404
        assert client.post(path).status_code == 404


def test_the_local_login_form_still_signs_a_local_account_in(client: Client) -> None:
    user = User.objects.create_user("alice", password="pw-alice-1")

    bad = client.post("/login/", {"username": "alice", "password": "wrong"})
    good = client.post("/login/", {"username": "alice", "password": "pw-alice-1"})

    assert bad.status_code == 200 and "did not match" in bad.content.decode()
    assert good.status_code == 302 and good["Location"] == reverse("pipelines:list")
    assert client.session["_auth_user_id"] == str(user.pk)


def test_allauths_password_email_and_connection_pages_lead_to_the_local_login_form(
    client: Client,
) -> None:
    client.force_login(User.objects.create_user("someone"))
    for path in (
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password/reset/",
        "/accounts/password/set/",
        "/accounts/password/change/",
        "/accounts/email/",
        "/accounts/3rdparty/",
    ):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/login/", path
        assert client.post(path, {"account": "1"}).status_code == 302, path


def providers_from_environment(tmp_path: Path, **env: str) -> dict[str, Any]:
    """SOCIALACCOUNT_PROVIDERS as settings.py builds it from this environment."""
    code = (
        "import json; from screwdriver_site import settings; "
        "print(json.dumps(settings.SOCIALACCOUNT_PROVIDERS))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SD_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "SD_DATA_DIR": str(tmp_path), **env},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    providers: dict[str, Any] = json.loads(result.stdout)
    return providers


def test_providers_are_configured_from_the_environment_only_when_id_and_secret_are_set(
    tmp_path: Path,
) -> None:
    assert providers_from_environment(tmp_path) == {}
    assert providers_from_environment(tmp_path, SD_GITHUB_CLIENT_ID="only-an-id") == {}

    both = providers_from_environment(
        tmp_path,
        SD_GITHUB_CLIENT_ID="gh",
        SD_GITHUB_CLIENT_SECRET="gh-s",
        SD_GITLAB_CLIENT_ID="gl",
        SD_GITLAB_CLIENT_SECRET="gl-s",
        SD_GITLAB_URL="https://gitlab.corp.example/",
    )

    assert both["github"]["APPS"] == [{"client_id": "gh", "secret": "gh-s"}]
    assert "GITHUB_URL" not in both["github"]
    assert both["gitlab"]["GITLAB_URL"] == "https://gitlab.corp.example"
    # Only what sign-in uses: the person's token reads repositories and their permissions.
    assert both["github"]["SCOPE"] == ["repo", "user:email"]
    assert both["gitlab"]["SCOPE"] == ["read_api", "read_user"]
    with_orgs = providers_from_environment(
        tmp_path,
        SD_GITHUB_CLIENT_ID="gh",
        SD_GITHUB_CLIENT_SECRET="gh-s",
        SD_SCM_ALLOWED_ORGS="octo-org",
    )
    # Listing a person's organizations needs read:org, asked only when the allow-list names one.
    assert with_orgs["github"]["SCOPE"] == ["repo", "user:email", "read:org"]


def test_github_enterprise_sign_in_follows_the_api_urls_host(tmp_path: Path) -> None:
    providers = providers_from_environment(
        tmp_path,
        SD_GITHUB_CLIENT_ID="gh",
        SD_GITHUB_CLIENT_SECRET="gh-s",
        SD_GITHUB_API_URL="https://ghe.corp.example/api/v3",
    )

    assert providers["github"]["GITHUB_URL"] == "https://ghe.corp.example"


# --- who may sign in: SD_SCM_ALLOWED_ORGS and SD_SCM_ALLOWED_USERS ---------------------------


@pytest.fixture
def orgs() -> Iterator[respx.Router]:
    """GitHub's and GitLab's membership lists, which our own code reads with httpx."""
    with respx.mock(assert_all_called=False) as router:
        yield router


def answer_orgs(orgs: respx.Router, logins: list[str], token: str = GITHUB_TOKEN) -> respx.Route:
    return orgs.get(
        "https://api.github.com/user/orgs", headers={"Authorization": f"Bearer {token}"}
    ).mock(return_value=httpx.Response(200, json=[{"login": login} for login in logins]))


def refused_to_login(response: Any, client: Client) -> bool:
    return (
        response.status_code == 302
        and response["Location"] == reverse("login")
        and "_auth_user_id" not in client.session
    )


def test_with_no_allow_list_anyone_on_github_may_sign_up(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS, settings.SD_SCM_ALLOWED_USERS = [], []

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert response.status_code == 302 and "_auth_user_id" in client.session
    assert not orgs.calls


def test_a_member_of_an_allowed_organization_signs_up(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["Octo-Org"]
    answer_orgs(orgs, ["someone-else", "octo-org"])

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert response["Location"] == reverse("pipelines:list")
    assert User.objects.filter(username="octocat").exists()


def test_someone_outside_the_allowed_organizations_gets_no_account_and_is_told_why(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["octo-org"]
    answer_orgs(orgs, ["other-org"])

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert refused_to_login(response, client)
    assert not User.objects.filter(username="octocat").exists()
    assert not ScmAccount.objects.exists() and not SocialAccount.objects.exists()
    page = client.get(reverse("login")).content.decode()
    assert "SD_SCM_ALLOWED_ORGS" in page


def test_an_allowed_username_signs_up_without_any_membership(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = []
    settings.SD_SCM_ALLOWED_USERS = ["gitlab:octocat", "github:OctoCat"]

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert response["Location"] == reverse("pipelines:list")
    assert not orgs.calls


def test_a_username_allowed_on_gitlab_only_is_not_allowed_on_github(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_USERS = ["gitlab:octocat"]
    settings.SD_SCM_ALLOWED_ORGS = []

    assert refused_to_login(sign_in_with_github(client, http, GITHUB_TOKEN), client)


def test_someone_who_left_the_organization_can_no_longer_sign_in(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["octo-org"]
    route = answer_orgs(orgs, ["octo-org"])
    sign_in_with_github(client, http, GITHUB_TOKEN)
    client.logout()
    http.reset()
    route.return_value = httpx.Response(200, json=[])

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert refused_to_login(response, client)


def test_a_github_that_cannot_list_memberships_signs_nobody_in(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["octo-org"]
    orgs.get("https://api.github.com/user/orgs").mock(return_value=httpx.Response(503))

    response = sign_in_with_github(client, http, GITHUB_TOKEN)

    assert refused_to_login(response, client)
    assert not User.objects.filter(username="octocat").exists()


def test_a_member_of_a_subgroup_of_an_allowed_gitlab_group_signs_up(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["gitlab:acme"]
    groups = orgs.get(f"{GITLAB_URL}/api/v4/groups").mock(
        return_value=httpx.Response(200, json=[{"full_path": "acme/platform"}])
    )

    response = sign_in_with_gitlab(client, http)

    assert response["Location"] == reverse("pipelines:list")
    assert groups.calls.last.request.headers["Authorization"] == f"Bearer {GITLAB_TOKEN}"
    assert groups.calls.last.request.url.params["min_access_level"] == "10"


def test_a_member_of_a_lookalike_gitlab_group_is_refused(
    client: Client, http: responses.RequestsMock, orgs: respx.Router, settings: Any
) -> None:
    settings.SD_SCM_ALLOWED_ORGS = ["acme"]
    orgs.get(f"{GITLAB_URL}/api/v4/groups").mock(
        return_value=httpx.Response(200, json=[{"full_path": "acme-evil"}])
    )

    assert refused_to_login(sign_in_with_gitlab(client, http), client)


# --- removing an SCM account ------------------------------------------------------------------


def test_an_scm_account_removed_through_allauth_takes_the_token_and_roles_with_it(
    client: Client, http: responses.RequestsMock
) -> None:
    sign_in_with_github(client, http, GITHUB_TOKEN)
    user = User.objects.get(username="octocat")
    pipeline = Pipeline.objects.create(
        name="o/r", scm_uri="github:github.com:o/r:main", scm_context="github:github.com"
    )
    ScmRole.objects.create(user=user, pipeline=pipeline, role="admin", checked_at=timezone.now())
    account = SocialAccount.objects.get(user=user)

    # What allauth's disconnect flow sends once it deleted the account.
    account.delete()
    social_account_removed.send(sender=SocialAccount, request=None, socialaccount=account)

    assert not ScmAccount.objects.filter(user=user).exists()
    assert not ScmRole.objects.filter(user=user).exists()


def test_a_sign_up_that_did_not_pass_the_allow_list_is_closed(settings: Any) -> None:
    login = SocialLogin(account=SocialAccount(provider="github"), user=User(username="octocat"))
    adapter = ScmSocialAccountAdapter()
    request = RequestFactory().get("/")

    settings.SD_SCM_ALLOWED_ORGS, settings.SD_SCM_ALLOWED_USERS = [], []
    assert adapter.is_open_for_signup(request, login)
    settings.SD_SCM_ALLOWED_ORGS = ["octo-org"]
    assert not adapter.is_open_for_signup(request, login)
