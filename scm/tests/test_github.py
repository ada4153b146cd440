"""GitHubScm against GitHub's REST API, answered at the HTTP boundary by respx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from pipelines.services import scm_for
from scm.base import ScmError
from scm.github import GitHubScm, full_name_of, is_github_url
from scm.local import LocalGitScm

API = "https://api.github.com"


@pytest.fixture
def router(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_API_URL = API
    settings.SD_GITHUB_TOKEN = "server-token"
    with respx.mock(base_url=API) as mock:
        yield mock


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git#dev",
        "https://github.com/org/repo#dev",
        "git@github.com:org/repo.git#dev",
    ],
)
def test_it_parses_https_and_ssh_checkout_urls(router: respx.Router, url: str) -> None:
    ref = GitHubScm().parse_url(url)
    assert (full_name_of(ref), ref.branch, ref.name) == ("org/repo", "dev", "repo")
    assert ref.repo_path == "https://github.com/org/repo.git"
    assert ref.scm_context == "github:github.com"
    assert ref.scm_uri == "github:github.com:org/repo:dev"
    assert ref.checkout_url == "https://github.com/org/repo.git#dev"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git#release/v2:services/api",
        "https://github.com/org/repo#release/v2:services/api/",
        "git@github.com:org/repo.git#release/v2:services/api",
    ],
)
def test_a_source_directory_follows_the_branch(router: respx.Router, url: str) -> None:
    ref = GitHubScm().parse_url(url)
    assert (full_name_of(ref), ref.branch, ref.root_dir) == (
        "org/repo",
        "release/v2",
        "services/api",
    )
    # As Screwdriver's scmUri: the folder after the branch, so each folder is a pipeline.
    assert ref.scm_uri == "github:github.com:org/repo:release/v2:services/api"
    assert ref.checkout_url == "https://github.com/org/repo.git#release/v2:services/api"
    assert GitHubScm().stored_ref(ref.checkout_url) == ref


@pytest.mark.parametrize("root_dir", ["", "/app", "../app", "app/../x", "a//b", "./app", "a\0b"])
def test_it_refuses_a_source_directory_outside_the_repository(
    router: respx.Router, root_dir: str
) -> None:
    with pytest.raises(ScmError, match="not a source directory inside the repository"):
        GitHubScm().parse_url(f"https://github.com/org/repo.git#main:{root_dir}")


def test_the_config_of_a_source_directory_is_read_in_that_folder(router: respx.Router) -> None:
    sha = "d" * 40
    router.get("/repos/org/repo/contents/app/screwdriver.yaml", params={"ref": sha}).mock(
        return_value=httpx.Response(200, content=b"jobs: {}")
    )
    ref = GitHubScm().parse_url("https://github.com/org/repo.git#main:app")
    assert GitHubScm().read_file(ref, sha, ref.repo_file("screwdriver.yaml")) == b"jobs: {}"


def test_a_url_without_branch_takes_the_default_branch(router: respx.Router) -> None:
    router.get("/repos/org/repo").mock(
        return_value=httpx.Response(200, json={"default_branch": "trunk"})
    )
    assert GitHubScm().parse_url("https://github.com/org/repo.git").branch == "trunk"


def test_it_refuses_urls_of_other_hosts(router: respx.Router) -> None:
    with pytest.raises(ScmError, match=r"not a github\.com repository"):
        GitHubScm().parse_url("https://gitlab.com/org/repo.git#main")


def test_github_enterprise_is_chosen_by_the_api_url(settings: Any) -> None:
    settings.SD_GITHUB_API_URL = "https://ghe.example.com/api/v3"
    assert is_github_url("https://ghe.example.com/org/repo.git#main")
    assert not is_github_url("https://github.com/org/repo.git#main")


def test_scm_for_picks_the_backend_by_url(router: respx.Router) -> None:
    assert isinstance(scm_for("https://github.com/org/repo.git#main"), GitHubScm)
    assert isinstance(scm_for("/srv/git/repo.git#main"), LocalGitScm)


def test_it_reads_head_commit_and_file(router: respx.Router) -> None:
    ref = GitHubScm().parse_url("https://github.com/org/repo.git#main")
    sha = "d" * 40
    router.get("/repos/org/repo/commits/heads/main").mock(
        return_value=httpx.Response(200, json={"sha": sha})
    )
    router.get(f"/repos/org/repo/commits/{sha}").mock(
        return_value=httpx.Response(
            200,
            json={
                "sha": sha,
                "html_url": "https://github.com/org/repo/commit/d",
                "commit": {
                    "message": "hello",
                    "author": {"name": "Ada", "email": "a@x", "date": "2024-01-02T03:04:05Z"},
                },
            },
        )
    )
    contents = router.get("/repos/org/repo/contents/screwdriver.yaml", params={"ref": sha}).mock(
        return_value=httpx.Response(200, content=b"jobs: {}")
    )
    scm = GitHubScm()
    assert scm.head_sha(ref) == sha
    info = scm.commit_info(ref, sha)
    assert (info.message, info.author_name, info.url) == (
        "hello",
        "Ada",
        "https://github.com/org/repo/commit/d",
    )
    assert info.committed_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert scm.read_file(ref, sha, "screwdriver.yaml") == b"jobs: {}"
    request = contents.calls.last.request
    assert request.headers["Accept"] == "application/vnd.github.raw+json"
    assert request.headers["Authorization"] == "Bearer server-token"


def test_a_missing_file_is_none_and_errors_say_what_to_do(router: respx.Router) -> None:
    ref = GitHubScm().parse_url("https://github.com/org/repo.git#main")
    router.get("/repos/org/repo/contents/screwdriver.yaml").mock(return_value=httpx.Response(404))
    router.get("/repos/org/repo/commits/heads/main").mock(return_value=httpx.Response(500))
    assert GitHubScm().read_file(ref, "e" * 40, "screwdriver.yaml") is None
    with pytest.raises(ScmError, match="check the token"):
        GitHubScm().head_sha(ref)


def test_an_unreachable_github_is_an_scm_error(router: respx.Router) -> None:
    ref = GitHubScm().parse_url("https://github.com/org/repo.git#main")
    router.get("/repos/org/repo/commits/heads/main").mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(ScmError, match="did not answer"):
        GitHubScm().head_sha(ref)


def test_no_webhook_is_registered_without_a_secret(router: respx.Router, settings: Any) -> None:
    settings.SD_GITHUB_WEBHOOK_SECRET = ""
    ref = GitHubScm().parse_url("https://github.com/org/repo.git#main")
    assert GitHubScm().install_hook(ref, notify_url="http://sd/v4/webhooks", key=b"") is False
    assert not router.calls
