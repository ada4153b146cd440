"""sourcePaths on pull requests: the ~pr jobs run only for the files the PR's whole diff touches."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from django.test import Client

from pipelines.models import Event, Pipeline
from pipelines.services import create_pipeline
from scm import github, gitlab
from scm.base import MAX_PR_FILE_PAGES, PR_FILES_PER_PAGE, RepoRef
from scm.models import WebhookDelivery
from scm.signing import gitlab_hook_token
from scm.tasks import process_delivery
from scm.tests.github_fakes import SECRET, deliver, fake_github
from scm.tests.scm_people import repository_admin

pytestmark = pytest.mark.django_db

REPO = "Codertocat/Hello-World"
PR_SHA = "e" * 40
FILES_URL = f"https://api.github.com/repos/{REPO}/pulls/7/files"

CONFIG = b"""
jobs:
  main:
    image: node:20
    requires: [~commit]
    steps:
      - build: echo main
  web:
    image: node:20
    requires: [~pr]
    sourcePaths: [web/]
    steps:
      - test: echo web
  api:
    image: node:20
    requires: [~pr]
    sourcePaths: [api/, "!api/README.md"]
    steps:
      - test: echo api
  lint:
    image: node:20
    requires: [~pr]
    steps:
      - test: echo lint
"""


def files(*names: str) -> list[dict[str, Any]]:
    """A page of GitHub's pull request files, in its shape."""
    return [{"filename": name, "status": "modified", "additions": 1} for name in names]


@pytest.fixture
def router(settings: Any) -> Iterator[respx.Router]:
    settings.SD_GITHUB_WEBHOOK_SECRET = SECRET
    settings.SD_GITHUB_TOKEN = "server-token"
    settings.SD_GITHUB_API_URL = "https://api.github.com"
    settings.SD_RESTRICT_PR = "none"
    settings.SD_CHAIN_PR = False
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def make_pipeline(router: respx.Router, config: bytes = CONFIG) -> Pipeline:
    fake_github(router, (REPO,), config=config)
    user = repository_admin("octo")
    return create_pipeline(checkout_url=f"https://github.com/{REPO}.git#master", user=user)


@pytest.fixture
def pipeline(router: respx.Router) -> Pipeline:
    return make_pipeline(router)


def answer_files(router: respx.Router, answer: Callable[[httpx.Request], httpx.Response]) -> None:
    # Same name as the fake's route: this one replaces it.
    router.get(url__regex=re.escape(FILES_URL), name=f"pr-files:{REPO}").mock(side_effect=answer)


def pages(*contents: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(200, json=contents[page - 1] if page <= len(contents) else [])

    return answer


def open_pr(client: Client, *, action: str = "opened", delivery: str = "d-1") -> WebhookDelivery:
    payload = {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "title": "Change things",
            "html_url": f"https://github.com/{REPO}/pull/7",
            "user": {"login": "octo"},
            "head": {"sha": PR_SHA, "ref": "patch", "repo": {"full_name": REPO}},
            "base": {"ref": "master", "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "master"},
        "sender": {"login": "octo"},
    }
    response = deliver(client, "pull_request", payload, delivery=delivery)
    assert response.status_code == 202, response.content
    row = WebhookDelivery.objects.get(delivery_id=delivery)
    process_delivery(row.pk)
    row.refresh_from_db()
    return row


def jobs_of(event: Event) -> list[str]:
    return sorted(build.job.name for build in event.builds.select_related("job"))


# --- GitHub -------------------------------------------------------------------------------


def test_a_pull_request_runs_only_the_pr_jobs_its_whole_diff_touches_across_pages(
    client: Client, router: respx.Router, pipeline: Pipeline
) -> None:
    # 100 files on the first page, the one under web/ on the second: every page is read.
    first = files(*(f"docs/page-{n}.md" for n in range(100)))
    answer_files(router, pages(first, files("web/index.html")))
    delivery = open_pr(client)
    event = Event.objects.get(type=Event.Type.PR)
    assert jobs_of(event) == ["PR-7:lint", "PR-7:web"]
    changed = event.meta["commit"]["changedFiles"].split(",")
    assert len(changed) == 101 and "web/index.html" in changed
    assert delivery.message == ""


def test_a_pr_file_that_only_an_exclude_names_does_not_run_the_job(
    client: Client, router: respx.Router, pipeline: Pipeline
) -> None:
    answer_files(router, pages(files("api/README.md")))
    open_pr(client)
    assert jobs_of(Event.objects.get()) == ["PR-7:lint"]


def test_new_commits_on_a_pr_are_matched_by_the_prs_whole_diff_not_the_last_push(
    client: Client, router: respx.Router, pipeline: Pipeline
) -> None:
    # The synchronize delivery's push only touched web/, but the PR as a whole touches api/ too.
    answer_files(router, pages(files("api/server.py", "web/app.js")))
    open_pr(client, action="synchronize")
    assert jobs_of(Event.objects.get()) == ["PR-7:api", "PR-7:lint", "PR-7:web"]


def test_a_pr_whose_files_touch_no_pr_job_builds_nothing_and_says_why(
    client: Client, router: respx.Router
) -> None:
    lint_on_pr = b"  lint:\n    image: node:20\n    requires: [~pr]\n"
    assert lint_on_pr in CONFIG
    pipeline = make_pipeline(
        router, CONFIG.replace(lint_on_pr, lint_on_pr.replace(b"~pr", b"main"))
    )
    answer_files(router, pages(files("docs/readme.md")))
    delivery = open_pr(client)
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.events == []
    assert delivery.message == (
        f"No ~pr job of pipeline {pipeline.pk} has a sourcePaths entry that the files pull "
        "request 7 changes match, so nothing ran; change a file under one, or start the job by "
        "hand."
    )
    assert not Event.objects.exists()


def test_a_pr_that_leaves_the_pipelines_folder_alone_builds_nothing_and_one_inside_does(
    client: Client, router: respx.Router
) -> None:
    fake_github(router, (REPO,), config=b"jobs: {}\n")
    router.get(f"https://api.github.com/repos/{REPO}/contents/app/screwdriver.yaml").mock(
        return_value=httpx.Response(200, content=CONFIG)
    )
    pipeline = create_pipeline(
        checkout_url=f"https://github.com/{REPO}.git#master:app", user=repository_admin("octo")
    )
    assert pipeline.root_dir == "app"

    answer_files(router, pages(files("web/index.html", "application.txt")))
    outside = open_pr(client)
    assert outside.events == [] and not Event.objects.exists()
    assert outside.message == (
        f"Pull request 7 changes no file under the root directory app of pipeline {pipeline.pk}, "
        "so nothing ran."
    )

    # Once the folder changes, sourcePaths count from the repository's top, as in Screwdriver:
    # web/ is not under app/ and still runs `web`; `lint` has none and stands for app/.
    answer_files(router, pages(files("app/main.py", "web/index.html")))
    open_pr(client, action="synchronize", delivery="d-2")
    assert jobs_of(Event.objects.get()) == ["PR-7:lint", "PR-7:web"]


def test_a_pr_with_more_files_than_the_cap_runs_every_pr_job(
    client: Client, router: respx.Router, pipeline: Pipeline
) -> None:
    full = files(*(f"docs/{n}.md" for n in range(PR_FILES_PER_PAGE)))
    route = router.get(url__regex=re.escape(FILES_URL), name=f"pr-files:{REPO}").mock(
        return_value=httpx.Response(200, json=full)
    )
    open_pr(client)
    event = Event.objects.get()
    assert jobs_of(event) == ["PR-7:api", "PR-7:lint", "PR-7:web"]
    assert route.call_count == MAX_PR_FILE_PAGES
    assert "commit" not in event.meta


def test_when_github_cannot_list_a_prs_files_every_pr_job_runs_and_the_delivery_says_so(
    client: Client, router: respx.Router, pipeline: Pipeline
) -> None:
    answer_files(router, lambda request: httpx.Response(502))
    delivery = open_pr(client)
    assert jobs_of(Event.objects.get()) == ["PR-7:api", "PR-7:lint", "PR-7:web"]
    assert delivery.message == (
        "The files pull request 7 changes are unknown (GitHub refused "
        f"/repos/{REPO}/pulls/7/files with 502; check the token.), so its ~pr jobs ran "
        "regardless of sourcePaths."
    )


def test_the_github_client_asks_for_pr_files_with_its_token_and_timeout(
    router: respx.Router,
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=files("a.txt", "a.txt", "b.txt"))

    answer_files(router, answer)
    ref = github.GitHubScm().parse_url(f"https://github.com/{REPO}.git#master")
    assert github.GitHubScm().pr_changed_files(ref, 7) == ["a.txt", "b.txt"]
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer server-token"
    assert dict(request.url.params) == {"per_page": "100", "page": "1"}
    assert request.extensions["timeout"]["read"] == github.TIMEOUT_SECONDS


def test_a_github_timeout_on_pr_files_is_an_scm_error_that_says_to_retry(
    router: respx.Router,
) -> None:
    answer_files(router, lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("slow")))
    ref = github.GitHubScm().parse_url(f"https://github.com/{REPO}.git#master")
    with pytest.raises(github.ScmError, match=r"GitHub did not answer \(slow\); retry later\."):
        github.GitHubScm().pr_changed_files(ref, 7)


# --- GitLab -------------------------------------------------------------------------------

GITLAB = "https://gitlab.example.com"
GITLAB_API = f"{GITLAB}/api/v4"
GITLAB_TOKEN = "gitlab-hook-token"
PROJECT = "acme/platform/diaspora"
DIFFS_URL = f"{GITLAB_API}/projects/{PROJECT.replace('/', '%2F')}/merge_requests/7/diffs"
SAMPLES = Path(__file__).resolve().parent / "gitlab_samples"


@pytest.fixture
def gitlab_router(settings: Any) -> Iterator[respx.Router]:
    """A self-managed GitLab whose project serves CONFIG at every sha."""
    settings.SD_GITLAB_URL = GITLAB
    settings.SD_GITLAB_WEBHOOK_TOKEN = GITLAB_TOKEN
    settings.SD_GITLAB_TOKEN = "server-token"
    settings.SD_RESTRICT_PR = "none"
    settings.SD_CHAIN_PR = False
    base = re.escape(f"{GITLAB_API}/projects/{PROJECT.replace('/', '%2F')}")
    with respx.mock(assert_all_called=False) as mock:
        # Whoever asks maintains the public project (scm_people.repository_admin).
        mock.get(url__regex=base + "$").mock(
            return_value=httpx.Response(
                200,
                json={
                    "visibility": "public",
                    "permissions": {"project_access": {"access_level": 40}},
                },
            )
        )
        mock.get(url__regex=base + r"/repository/commits/master$").mock(
            return_value=httpx.Response(200, json={"id": "a" * 40})
        )
        mock.get(url__regex=base + r"/repository/commits/[0-9a-f]{40}$").mock(
            side_effect=lambda request: httpx.Response(
                200, json={"id": request.url.path.rsplit("/", 1)[1], "message": "x"}
            )
        )
        mock.get(url__regex=base + r"/repository/files/screwdriver\.yaml/raw").mock(
            return_value=httpx.Response(200, content=CONFIG)
        )
        mock.get(url__regex=base + r"/hooks\?").mock(return_value=httpx.Response(200, json=[]))
        mock.post(url__regex=base + r"/hooks$").mock(return_value=httpx.Response(201, json={}))
        yield mock


@pytest.fixture
def gitlab_pipeline(gitlab_router: respx.Router) -> Pipeline:
    user = repository_admin("jsmith", "gitlab")
    return create_pipeline(checkout_url=f"{GITLAB}/{PROJECT}.git#master", user=user)


def open_mr(client: Client) -> WebhookDelivery:
    response = client.post(
        "/v4/webhooks",
        data=(SAMPLES / "merge_request_open.json").read_bytes(),
        content_type="application/json",
        headers={
            "X-Gitlab-Event": "Merge Request Hook",
            "Idempotency-Key": "g-1",
            "X-Gitlab-Token": gitlab_hook_token(PROJECT),
        },
    )
    assert response.status_code == 202, response.content
    row = WebhookDelivery.objects.get(scm="gitlab", delivery_id="g-1")
    process_delivery(row.pk)
    row.refresh_from_db()
    return row


def diffs(*paths: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"old_path": old, "new_path": new, "diff": "@@"} for old, new in paths]


def test_a_merge_request_runs_only_the_pr_jobs_its_diffs_touch_by_their_new_path(
    client: Client, gitlab_router: respx.Router, gitlab_pipeline: Pipeline
) -> None:
    # A file moved out of web/ into api/: the new path counts, as in Screwdriver.
    gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(
        return_value=httpx.Response(200, json=diffs(("web/old.py", "api/new.py")))
    )
    delivery = open_mr(client)
    event = Event.objects.get(type=Event.Type.PR)
    assert jobs_of(event) == ["PR-7:api", "PR-7:lint"]
    assert event.meta["commit"]["changedFiles"] == "api/new.py"
    assert delivery.message == ""


def test_the_merge_request_diffs_are_read_page_by_page(
    client: Client, gitlab_router: respx.Router, gitlab_pipeline: Pipeline
) -> None:
    first = diffs(*((f"docs/{n}.md", f"docs/{n}.md") for n in range(PR_FILES_PER_PAGE)))

    def answer(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page"]
        return httpx.Response(200, json=first if page == "1" else diffs(("web/a", "web/a")))

    gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(side_effect=answer)
    open_mr(client)
    assert jobs_of(Event.objects.get()) == ["PR-7:lint", "PR-7:web"]


def test_when_gitlab_has_no_diffs_api_every_pr_job_runs_and_the_delivery_says_so(
    client: Client, gitlab_router: respx.Router, gitlab_pipeline: Pipeline
) -> None:
    gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(return_value=httpx.Response(404))
    delivery = open_mr(client)
    assert jobs_of(Event.objects.get()) == ["PR-7:api", "PR-7:lint", "PR-7:web"]
    assert delivery.message.startswith(
        "The files pull request 7 changes are unknown (GitLab has no /projects/"
    )
    assert "SD_GITLAB_TOKEN cannot read it: check the repository and give the token access" in (
        delivery.message
    )
    assert delivery.message.endswith("so its ~pr jobs ran regardless of sourcePaths.")


def test_a_gitlab_merge_request_with_more_diffs_than_the_cap_runs_every_pr_job(
    client: Client, gitlab_router: respx.Router, gitlab_pipeline: Pipeline
) -> None:
    full = diffs(*((f"docs/{n}", f"docs/{n}") for n in range(PR_FILES_PER_PAGE)))
    route = gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(
        return_value=httpx.Response(200, json=full)
    )
    open_mr(client)
    assert jobs_of(Event.objects.get()) == ["PR-7:api", "PR-7:lint", "PR-7:web"]
    assert route.call_count == MAX_PR_FILE_PAGES


def test_the_gitlab_client_asks_for_diffs_with_its_token_and_timeout(
    gitlab_router: respx.Router,
) -> None:
    route = gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(
        return_value=httpx.Response(200, json=diffs(("a", "a")))
    )
    ref: RepoRef = gitlab.GitLabScm().parse_url(f"{GITLAB}/{PROJECT}.git#master")
    assert gitlab.GitLabScm().pr_changed_files(ref, 7) == ["a"]
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer server-token"
    assert request.extensions["timeout"]["read"] == gitlab.TIMEOUT_SECONDS


def test_an_unexpected_answer_for_merge_request_diffs_is_an_scm_error(
    gitlab_router: respx.Router,
) -> None:
    gitlab_router.get(url__regex=re.escape(DIFFS_URL)).mock(
        return_value=httpx.Response(200, json={"message": "odd"})
    )
    ref = gitlab.GitLabScm().parse_url(f"{GITLAB}/{PROJECT}.git#master")
    with pytest.raises(gitlab.ScmError, match="something other than a list of diffs; retry later"):
        gitlab.GitLabScm().pr_changed_files(ref, 7)


def test_a_sample_merge_request_is_what_these_tests_think_it_is() -> None:
    attributes = json.loads((SAMPLES / "merge_request_open.json").read_bytes())["object_attributes"]
    assert (attributes["iid"], attributes["target_branch"]) == (7, "master")
