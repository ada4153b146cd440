"""GitLabScm against GitLab's REST API v4, answered at the HTTP boundary by respx."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from django_q.conf import Conf

from builds import services as build_services
from builds.models import Build, BuildStatus
from pipelines.models import Pipeline
from pipelines.services import Creator, create_pipeline, scm_for, start_event
from scm.base import RepoRef, ScmError
from scm.github import GitHubScm
from scm.gitlab import GitLabScm, is_gitlab_url, project_path_of
from scm.local import LocalGitScm
from scm.signing import gitlab_hook_token
from scm.statuses import report_commit_status
from scm.tests.scm_people import repository_admin

GITLAB = "https://gitlab.com"
API = f"{GITLAB}/api/v4"
PROJECT = f"{API}/projects/group%2Fsub%2Frepo"
SHA = "a" * 40
CONFIG = (
    b"jobs:\n  main:\n    image: node:20\n    requires: [~commit]\n    steps:\n      - b: echo\n"
)


@pytest.fixture
def router(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITLAB_URL = GITLAB
    settings.SD_GITLAB_TOKEN = "server-token"
    settings.SD_GITLAB_WEBHOOK_TOKEN = "hook-token"
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def ref() -> RepoRef:
    return GitLabScm().parse_url(f"{GITLAB}/group/sub/repo.git#main")


def route(router: respx.Router, method: str, url: str) -> respx.Route:
    """A route matching the URL as sent, with its %2F-encoded project path."""
    return router.route(method=method, url__regex="^" + url.replace(".", r"\.") + r"(\?.*)?$")


# --- checkout URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/group/sub/repo.git#dev",
        "https://gitlab.com/group/sub/repo#dev",
        "git@gitlab.com:group/sub/repo.git#dev",
        "ssh://git@gitlab.com/group/sub/repo.git#dev",
    ],
)
def test_it_parses_https_and_ssh_checkout_urls_with_subgroups(
    router: respx.Router, url: str
) -> None:
    parsed = GitLabScm().parse_url(url)
    assert (project_path_of(parsed), parsed.branch, parsed.name) == (
        "group/sub/repo",
        "dev",
        "repo",
    )
    assert parsed.repo_path == "https://gitlab.com/group/sub/repo.git"
    assert parsed.scm_context == "gitlab:gitlab.com"
    assert parsed.scm_uri == "gitlab:gitlab.com:group/sub/repo:dev"
    assert parsed.checkout_url == "https://gitlab.com/group/sub/repo.git#dev"


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/group/sub/repo.git#dev:web/app",
        "git@gitlab.com:group/sub/repo.git#dev:web/app/",
        "ssh://git@gitlab.com/group/sub/repo.git#dev:web/app",
    ],
)
def test_a_source_directory_follows_the_branch(router: respx.Router, url: str) -> None:
    parsed = GitLabScm().parse_url(url)
    assert (project_path_of(parsed), parsed.branch, parsed.root_dir) == (
        "group/sub/repo",
        "dev",
        "web/app",
    )
    assert parsed.scm_uri == "gitlab:gitlab.com:group/sub/repo:dev:web/app"
    assert parsed.checkout_url == "https://gitlab.com/group/sub/repo.git#dev:web/app"
    assert GitLabScm().stored_ref(parsed.checkout_url) == parsed


@pytest.mark.parametrize("root_dir", ["", "/web", "..", "web/../..", "web//app", "web/."])
def test_it_refuses_a_source_directory_outside_the_repository(
    router: respx.Router, root_dir: str
) -> None:
    with pytest.raises(ScmError, match="not a source directory inside the repository"):
        GitLabScm().parse_url(f"{GITLAB}/group/sub/repo.git#dev:{root_dir}")


def test_a_url_without_branch_takes_the_projects_default_branch(router: respx.Router) -> None:
    route(router, "GET", PROJECT).mock(
        return_value=httpx.Response(200, json={"default_branch": "trunk"})
    )
    assert GitLabScm().parse_url(f"{GITLAB}/group/sub/repo.git").branch == "trunk"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git#main",
        "https://gitlab.com/repo.git#main",
        "https://gitlab.com/group/../repo.git#main",
        "https://gitlab.example.com/group/repo.git#main",
    ],
)
def test_it_refuses_urls_that_name_no_project_on_the_configured_gitlab(
    router: respx.Router, url: str
) -> None:
    assert not is_gitlab_url(url)
    with pytest.raises(ScmError, match=r"not a gitlab\.com repository URL"):
        GitLabScm().parse_url(url)


def test_a_self_managed_gitlab_is_chosen_by_its_url(settings: Any) -> None:
    settings.SD_GITLAB_URL = "https://git.example.com:8443/"
    parsed = GitLabScm().parse_url("https://git.example.com:8443/team/app.git#main")
    assert parsed.scm_context == "gitlab:git.example.com:8443"
    assert parsed.repo_path == "https://git.example.com:8443/team/app.git"
    assert is_gitlab_url("git@git.example.com:team/app.git#main")
    assert not is_gitlab_url("https://gitlab.com/team/app.git#main")


def test_scm_for_picks_gitlab_for_its_urls_and_pipelines(router: respx.Router) -> None:
    assert isinstance(scm_for(f"{GITLAB}/group/repo.git#main"), GitLabScm)
    assert isinstance(scm_for("https://github.com/org/repo.git#main"), GitHubScm)
    assert isinstance(scm_for("/abs/repo.git#main"), LocalGitScm)
    assert isinstance(scm_for(Pipeline(scm_context="gitlab:gitlab.com")), GitLabScm)


# --- reading the repository ----------------------------------------------------------------


def test_it_reads_a_file_at_a_sha_with_the_server_token(router: respx.Router) -> None:
    files = route(router, "GET", f"{PROJECT}/repository/files/screwdriver.yaml/raw").mock(
        return_value=httpx.Response(200, content=CONFIG)
    )
    assert GitLabScm().read_file(ref(), SHA, "screwdriver.yaml") == CONFIG
    request = files.calls.last.request
    assert request.url.params["ref"] == SHA
    assert request.headers["Authorization"] == "Bearer server-token"


def test_a_file_in_a_directory_is_asked_for_with_its_slashes_encoded(router: respx.Router) -> None:
    files = route(router, "GET", f"{PROJECT}/repository/files/ci%2Fscrewdriver.yaml/raw").mock(
        return_value=httpx.Response(200, content=CONFIG)
    )
    assert GitLabScm().read_file(ref(), SHA, "ci/screwdriver.yaml") == CONFIG
    assert files.called


def test_a_missing_file_is_none_and_a_refusal_or_huge_file_an_error(router: respx.Router) -> None:
    files = route(router, "GET", f"{PROJECT}/repository/files/screwdriver.yaml/raw")
    files.mock(return_value=httpx.Response(404, json={"message": "404 File Not Found"}))
    assert GitLabScm().read_file(ref(), SHA, "screwdriver.yaml") is None
    files.mock(return_value=httpx.Response(403))
    with pytest.raises(ScmError, match=r"refused to read screwdriver\.yaml \(403\)"):
        GitLabScm().read_file(ref(), SHA, "screwdriver.yaml")
    files.mock(return_value=httpx.Response(200, content=b"x" * (512 * 1024 + 1)))
    with pytest.raises(ScmError, match="larger than 512 KiB"):
        GitLabScm().read_file(ref(), SHA, "screwdriver.yaml")


def test_it_reads_the_branch_head_and_a_commits_author_and_time(router: respx.Router) -> None:
    route(router, "GET", f"{PROJECT}/repository/commits/main").mock(
        return_value=httpx.Response(200, json={"id": SHA})
    )
    route(router, "GET", f"{PROJECT}/repository/commits/{SHA}").mock(
        return_value=httpx.Response(
            200,
            json={
                "id": SHA,
                "message": "Fix the build\n",
                "author_name": "Jane",
                "author_email": "jane@example.com",
                "authored_date": "2026-11-20T10:15:02.000+01:00",
                "web_url": f"{GITLAB}/group/sub/repo/-/commit/{SHA}",
            },
        )
    )
    scm = GitLabScm()
    assert scm.head_sha(ref()) == SHA
    info = scm.commit_info(ref(), SHA)
    assert (info.message, info.author_name, info.author_email) == (
        "Fix the build\n",
        "Jane",
        "jane@example.com",
    )
    assert info.committed_at == datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)
    assert info.url.endswith(f"/-/commit/{SHA}")


def test_an_unreachable_gitlab_is_an_error_that_says_to_retry(router: respx.Router) -> None:
    route(router, "GET", f"{PROJECT}/repository/commits/main").mock(
        side_effect=httpx.ConnectError("no route")
    )
    with pytest.raises(ScmError, match=r"GitLab did not answer .* retry later"):
        GitLabScm().head_sha(ref())


# --- the project hook ----------------------------------------------------------------------


def test_it_registers_the_project_hook_with_the_token_and_events(router: respx.Router) -> None:
    route(router, "GET", f"{PROJECT}/hooks").mock(return_value=httpx.Response(200, json=[]))
    create = route(router, "POST", f"{PROJECT}/hooks").mock(
        return_value=httpx.Response(201, json={"id": 3})
    )
    assert GitLabScm().install_hook(ref(), notify_url="https://sd.example.com/v4/webhooks", key=b"")
    hook = json.loads(create.calls.last.request.content)
    assert hook["url"] == "https://sd.example.com/v4/webhooks"
    assert hook["token"] == gitlab_hook_token("group/sub/repo")
    assert hook["push_events"] and hook["tag_push_events"] and hook["merge_requests_events"]
    assert hook["enable_ssl_verification"] is True


def test_an_existing_hook_for_the_same_url_is_updated_not_duplicated(
    router: respx.Router,
) -> None:
    url = "https://sd.example.com/v4/webhooks"
    route(router, "GET", f"{PROJECT}/hooks").mock(
        return_value=httpx.Response(
            200, json=[{"id": 1, "url": "https://x"}, {"id": 9, "url": url}]
        )
    )
    update = route(router, "PUT", f"{PROJECT}/hooks/9").mock(
        return_value=httpx.Response(200, json={"id": 9})
    )
    create = route(router, "POST", f"{PROJECT}/hooks")
    assert GitLabScm().install_hook(ref(), notify_url=url, key=b"")
    assert update.called and not create.called
    assert json.loads(update.calls.last.request.content)["token"] == gitlab_hook_token(
        "group/sub/repo"
    )


def test_no_hook_is_registered_without_a_webhook_token_or_a_server_token(
    router: respx.Router, settings: Any
) -> None:
    settings.SD_GITLAB_WEBHOOK_TOKEN = ""
    assert not GitLabScm().install_hook(ref(), notify_url="https://x/v4/webhooks", key=b"")
    settings.SD_GITLAB_WEBHOOK_TOKEN = "hook-token"
    assert not GitLabScm(token="").install_hook(ref(), notify_url="https://x/v4/webhooks", key=b"")
    assert not router.calls


def test_a_token_without_maintainer_rights_gets_an_error_that_says_so(
    router: respx.Router,
) -> None:
    route(router, "GET", f"{PROJECT}/hooks").mock(return_value=httpx.Response(403))
    with pytest.raises(ScmError, match="needs Maintainer rights"):
        GitLabScm().install_hook(ref(), notify_url="https://x/v4/webhooks", key=b"")


# --- user roles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("project_level", "group_level", "role"),
    [
        (50, None, "admin"),
        (40, None, "admin"),
        (30, None, "push"),
        (20, None, "pull"),
        (10, None, None),
        (None, None, None),
        (20, 40, "admin"),
        (None, 30, "push"),
    ],
)
def test_gitlab_access_levels_map_to_admin_push_and_pull(
    router: respx.Router, project_level: int | None, group_level: int | None, role: str | None
) -> None:
    permissions = {
        "project_access": None if project_level is None else {"access_level": project_level},
        "group_access": None if group_level is None else {"access_level": group_level},
    }
    project = route(router, "GET", PROJECT).mock(
        return_value=httpx.Response(200, json={"id": 1, "permissions": permissions})
    )
    assert GitLabScm().user_role(ref(), "user-token") == role
    assert project.calls.last.request.headers["Authorization"] == "Bearer user-token"


def test_a_project_the_user_cannot_see_gives_no_role(router: respx.Router) -> None:
    route(router, "GET", PROJECT).mock(return_value=httpx.Response(404))
    assert GitLabScm().user_role(ref(), "user-token") is None


def test_a_gitlab_failure_while_asking_for_a_role_is_an_error_not_a_denial(
    router: respx.Router,
) -> None:
    route(router, "GET", PROJECT).mock(return_value=httpx.Response(502))
    with pytest.raises(ScmError, match=r"refused to say who may use group/sub/repo \(502\)"):
        GitLabScm().user_role(ref(), "user-token")


def test_the_base_scm_knows_no_roles(make_repo: Any) -> None:
    repo = make_repo({"screwdriver.yaml": CONFIG.decode()})
    local = LocalGitScm()
    assert local.user_role(local.parse_url(repo.checkout_url), "any-token") is None


# --- commit statuses -----------------------------------------------------------------------


@pytest.fixture
def gitlab_pipeline(
    router: respx.Router, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Pipeline:
    """A pipeline on group/sub/repo#main; django-q2 runs tasks in-line (its sync mode)."""
    settings.SD_UI_URL = "https://sd.example.com"
    monkeypatch.setattr(Conf, "SYNC", True)
    # jane maintains the public project (scm_people.repository_admin).
    route(router, "GET", PROJECT).mock(
        return_value=httpx.Response(
            200,
            json={
                "visibility": "public",
                "permissions": {"project_access": {"access_level": 40}},
            },
        )
    )
    route(router, "GET", f"{PROJECT}/repository/commits/main").mock(
        return_value=httpx.Response(200, json={"id": SHA})
    )
    route(router, "GET", f"{PROJECT}/repository/commits/{SHA}").mock(
        return_value=httpx.Response(200, json={"id": SHA, "message": "m"})
    )
    route(router, "GET", f"{PROJECT}/repository/files/screwdriver.yaml/raw").mock(
        return_value=httpx.Response(200, content=CONFIG)
    )
    route(router, "GET", f"{PROJECT}/hooks").mock(return_value=httpx.Response(200, json=[]))
    route(router, "POST", f"{PROJECT}/hooks").mock(return_value=httpx.Response(201, json={}))
    route(router, "POST", f"{PROJECT}/statuses/{SHA}").mock(
        return_value=httpx.Response(201, json={})
    )
    user = repository_admin("jane", "gitlab")
    return create_pipeline(checkout_url=f"{GITLAB}/group/sub/repo.git#main", user=user)


def statuses(router: respx.Router) -> list[dict[str, Any]]:
    return [
        json.loads(call.request.content)
        for call in router.calls
        if call.request.url.raw_path.endswith(f"/statuses/{SHA}".encode())
    ]


def start_build(pipeline: Pipeline) -> Build:
    event = start_event(
        pipeline=pipeline, start_from="~commit", creator=Creator(name="j", username="j")
    )
    return Build.objects.get(event=event)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "state"),
    [
        (BuildStatus.SUCCESS, "success"),
        (BuildStatus.FAILURE, "failed"),
        (BuildStatus.ABORTED, "canceled"),
    ],
)
def test_each_status_change_of_a_gitlab_build_is_posted_with_gitlabs_states(
    router: respx.Router,
    gitlab_pipeline: Pipeline,
    django_capture_on_commit_callbacks: Callable[..., Any],
    status: str,
    state: str,
) -> None:
    build = start_build(gitlab_pipeline)
    with django_capture_on_commit_callbacks(execute=True):
        build_services.mark_running(build_id=build.pk)
    with django_capture_on_commit_callbacks(execute=True):
        if status == BuildStatus.ABORTED:
            build_services.abort_build(build_id=build.pk, message="stop")
        else:
            build_services.finish_build(build_id=build.pk, status=status)
    bodies = statuses(router)
    assert [body["state"] for body in bodies][-2:] == ["running", state]
    assert {body["name"] for body in bodies} == {f"Screwdriver/{gitlab_pipeline.pk}/main"}
    assert bodies[-1]["target_url"] == (
        f"https://sd.example.com/pipelines/{gitlab_pipeline.pk}/builds/{build.pk}"
    )


@pytest.mark.django_db
def test_gitlab_refusing_a_repeated_state_is_not_an_error(
    router: respx.Router, gitlab_pipeline: Pipeline
) -> None:
    build = start_build(gitlab_pipeline)
    route(router, "POST", f"{PROJECT}/statuses/{SHA}").mock(
        return_value=httpx.Response(
            400, json={"message": "Cannot transition status via :enqueue from :pending"}
        )
    )
    assert report_commit_status(build_id=build.pk) is True
    route(router, "POST", f"{PROJECT}/statuses/{SHA}").mock(return_value=httpx.Response(500))
    assert report_commit_status(build_id=build.pk) is False


@pytest.mark.django_db
def test_no_status_is_posted_without_a_server_token(
    router: respx.Router, gitlab_pipeline: Pipeline, settings: Any
) -> None:
    build = start_build(gitlab_pipeline)
    settings.SD_GITLAB_TOKEN = ""
    before = len(statuses(router))
    assert report_commit_status(build_id=build.pk) is False
    assert len(statuses(router)) == before
