"""In Chromium: sign in, create and start a pipeline, watch its log live, stop it, add a secret;
and HTML in a log line, a commit message or a branch name stays text."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builds.models import Build, BuildStatus
from conftest import GitRepo, database_url, run_git, wait_until
from pipelines.models import Pipeline, Secret
from pipelines.services import Creator, create_pipeline, start_event
from tools.live_stack import LiveStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a long enough password"
CSP_VIOLATION = ("Content Security Policy", "Content-Security-Policy", "Refused to")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        shutil.which("git") is None, reason="git is needed for real repositories: install git"
    ),
    # One live server per test file worker, so the browser tests of a run never share a port.
    pytest.mark.xdist_group("browser"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def fast_password_hasher() -> None:
    """The server is another process with the default hasher: it must be able to check ours."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API drives its own event loop in this thread; Django must not mistake
    # the test's ORM calls between browser calls for calls from async code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(transactional_db: None, tmp_path: Path, settings: Any) -> Iterator[LiveStack]:
    """Daphne and a worker on the test database; the test process reports the same URL."""
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        # The server is another process: it allows the tests' repositories as this one does.
        extra_env={
            "SD_BUILD_LEASE_SECONDS": "30",
            "SD_LOCAL_REPO_ROOTS": ",".join(settings.SD_LOCAL_REPO_ROOTS),
        },
    )
    settings.SD_API_URL = stack.url
    settings.SD_UI_URL = stack.url
    yield stack
    stack.stop()


@pytest.fixture
def page(browser: Any, live: LiveStack) -> Iterator[Any]:
    """A fresh browser tab that records every dialog, so a test can prove none was opened."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.dialogs = dialogs
    # Chromium reports what the Content-Security-Policy blocked on the console.
    refused: list[str] = []

    def on_console(message: Any) -> None:
        if any(sign in message.text for sign in CSP_VIOLATION):
            refused.append(f"{tab.url}: {message.text}")

    tab.on("console", on_console)
    yield tab
    context.close()
    assert not refused, "the Content-Security-Policy blocked part of a page:\n" + "\n".join(refused)


def sign_in(page: Any, username: str = "alice") -> User:
    user = User.objects.create_user(username, password=PASSWORD, first_name="Alice")
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/pipelines$"))
    return user


WAITING_STEP = (
    'echo "first line"; i=0; while [ ! -f {go} ] && [ $i -lt 600 ]; do sleep 0.1; '
    'i=$((i+1)); done; echo "second line"'
)


def test_a_person_creates_starts_watches_live_and_stops_a_build(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    step = WAITING_STEP.format(go=go)
    repo = make_repo(
        {
            "screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
            f"    steps:\n      - wait: '{step}'\n"
        }
    )
    sign_in(page)

    page.get_by_label("Checkout URL").fill(repo.checkout_url)
    page.get_by_role("button", name="Create pipeline").click()
    page.wait_for_url(re.compile(r"/pipelines/\d+$"))
    pipeline = Pipeline.objects.get()
    assert page.get_by_role("heading", name=pipeline.name).is_visible()

    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(r"/pipelines/\d+/events/\d+$"))
    page.locator(".graph a.node-link").first.click()
    page.wait_for_url(re.compile(r"/pipelines/\d+/builds/\d+$"))

    # The line arrives over the WebSocket while the step is still waiting for its file.
    line = page.locator("#steps .line", has_text="first line")
    line.wait_for(state="visible")
    build = Build.objects.get()
    assert build.status == BuildStatus.RUNNING
    assert page.locator("#build").get_attribute("data-live") == "true"
    assert page.locator("#steps .line", has_text="second line").count() == 0
    page.locator("#build-status .badge", has_text="RUNNING").wait_for()

    page.get_by_role("button", name="Stop", exact=True).click()
    page.locator("#build-status .badge", has_text="ABORTED").wait_for()
    build.refresh_from_db()
    assert build.status == BuildStatus.ABORTED
    assert page.dialogs == []


def test_an_admin_adds_a_secret_whose_value_is_never_shown(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    repo = make_repo(
        {"screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    steps: [{a: 'true'}]\n"}
    )
    user = sign_in(page)
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)

    page.goto(f"/pipelines/{pipeline.pk}/secrets")
    page.get_by_label("Name").fill("DEPLOY_KEY")
    page.get_by_label("Value").fill("hunter2-very-secret")
    page.get_by_label("Allow in pull requests").check()
    page.get_by_role("button", name="Add secret").click()
    page.get_by_text("Secret DEPLOY_KEY added.").wait_for()

    secret = Secret.objects.get(pipeline=pipeline)
    assert (secret.name, secret.allow_in_pr) == ("DEPLOY_KEY", True)
    assert page.locator("#secret-DEPLOY_KEY").is_visible()
    assert "hunter2-very-secret" not in page.content()


XSS_LOG = "<img src=x onerror=alert(1)>"
XSS_COMMIT = "<img src=x onerror=window.__xss=1>"
XSS_BRANCH = "<svg/onload=alert(1)>"


def test_html_in_a_log_line_a_commit_message_and_a_branch_is_text(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    config = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n"
        f"      - show: echo '{XSS_LOG}'\n"
        "      - colours: printf '\\033[31mred\\033[0m plain\\n'\n"
    )
    repo = make_repo({"screwdriver.yaml": config})
    repo.commit({}, XSS_COMMIT)
    run_git("push", "-q", "origin", f"HEAD:refs/heads/{XSS_BRANCH}", cwd=repo.work)
    user = sign_in(page)
    pipeline = create_pipeline(checkout_url=f"{repo.bare}#{XSS_BRANCH}", user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = wait_until(
        lambda: Build.objects.filter(event=event, status=BuildStatus.SUCCESS).first(),
        timeout=60,
        what="the build to succeed",
    )

    page.goto(f"/pipelines/{pipeline.pk}")
    page.get_by_text(XSS_BRANCH).first.wait_for()
    page.get_by_text(XSS_COMMIT).first.wait_for()

    page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
    page.locator("details:has(.step-name:text-is('show')) > summary").click()
    page.locator("#steps .line .msg", has_text=XSS_LOG).wait_for()
    assert page.locator("#steps .log img").count() == 0
    assert page.dialogs == []
    assert page.evaluate("window.__xss") is None

    # ANSI colours become classes; a line number links to the line and highlights it.
    page.locator("details:has(.step-name:text-is('colours')) > summary").click()
    red = page.locator("#steps .ansi-fg-1", has_text="red")
    red.wait_for()
    page.locator("[id='colours:1'] a.ln").click()
    assert page.url.endswith("#colours:1")
    # The page highlights on its hashchange event, after the click returns: wait for it.
    page.wait_for_selector("[id='colours:1'].highlight", timeout=5000)
    page.get_by_label("Timestamps").select_option("wall")
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3}", page.locator("[id='colours:1'] .ts-w").inner_text()
    )


def test_the_log_resumes_after_the_server_restarts_without_gaps_or_repeats(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    step = "for i in $(seq 1 60); do echo tick $i; sleep 0.1; done"
    repo = make_repo(
        {
            "screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
            f"    steps:\n      - count: {step}\n"
        }
    )
    user = sign_in(page)
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = wait_until(lambda: Build.objects.filter(event=event).first(), what="the build")

    page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
    page.locator("#steps .line", has_text="tick 5").wait_for()
    live.stop_server()
    # Selectors, not wait_for_function: the page's CSP refuses the eval its polling needs.
    page.locator("#build[data-live='false']").wait_for()
    live.start_server()
    page.locator("#steps .line .msg", has_text=re.compile(r"^tick 60$")).wait_for(timeout=40_000)
    ids = page.eval_on_selector_all(
        "[data-step='count'] .line", "lines => lines.map(line => line.id)"
    )
    assert ids == [f"count:{n}" for n in range(1, 61)]
    # The page polled meanwhile; its socket comes back after its back-off (up to 10 s).
    page.locator("#build[data-live='true']").wait_for(timeout=30_000)


def test_lines_that_arrive_after_a_hole_are_taken_in_order_from_the_database(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    step = "i=1; while [ $i -le 60 ]; do echo tick $i; i=$((i+1)); done"
    repo = make_repo(
        {
            "screwdriver.yaml": "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
            f"    steps:\n      - count: {step}\n"
        }
    )
    user = sign_in(page)
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    build = wait_until(
        lambda: Build.objects.filter(event=event, status=BuildStatus.SUCCESS).first(),
        timeout=60,
        what="the build",
    )

    # Between the page and the server, the first lines of the step's backlog go missing, as
    # when a reconnecting page gets a live batch before the backlog of what it missed.
    def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(message))
        holed: list[bool] = []

        def to_page(message: Any) -> None:
            data = json.loads(message)
            if data.get("type") == "lines" and data.get("step") == "count" and not holed:
                holed.append(True)
                ws.send(json.dumps({**data, "lines": data["lines"][30:]}))
            else:
                ws.send(message)

        server.on_message(to_page)

    page.route_web_socket(re.compile(r"/ws/builds/"), relay)
    page.goto(f"/pipelines/{pipeline.pk}/builds/{build.pk}")
    page.locator("[data-step='count'] summary").first.click()
    page.locator("#steps .line .msg", has_text=re.compile(r"^tick 60$")).wait_for()
    ids = page.eval_on_selector_all(
        "[data-step='count'] .line", "lines => lines.map(line => line.id)"
    )
    assert ids == [f"count:{n}" for n in range(1, 61)]


def test_a_matrix_jobs_permutations_are_visible_on_its_node_and_each_opens_its_build(
    page: Any, live: LiveStack, make_repo: Callable[..., GitRepo]
) -> None:
    config = (
        "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n"
        "    matrix:\n      FLAVOUR: [plain, salted, sweet]\n"
        "    steps:\n      - say: echo $FLAVOUR\n"
    )
    repo = make_repo({"screwdriver.yaml": config})
    user = sign_in(page)
    pipeline = create_pipeline(checkout_url=repo.checkout_url, user=user)
    event = start_event(pipeline=pipeline, start_from="~commit", creator=Creator("A", "alice"))
    wait_until(
        lambda: Build.objects.filter(event=event, status=BuildStatus.SUCCESS).count() == 3,
        timeout=90,
        what="the three permutations to succeed",
    )
    builds = list(Build.objects.filter(event=event).order_by("permutation"))

    page.goto(f"/pipelines/{pipeline.pk}")
    marks = page.locator(".graph [data-job='main'] a.mark-link")
    marks.first.wait_for()
    assert marks.count() == 3
    assert all(marks.nth(i).is_visible() for i in range(3))
    assert "node-success" in (page.locator(".graph [data-job='main']").get_attribute("class") or "")
    assert "FLAVOUR=salted" in (marks.nth(1).get_attribute("aria-label") or "")

    marks.nth(1).click()
    page.wait_for_url(re.compile(rf"/pipelines/{pipeline.pk}/builds/{builds[1].pk}$"))
    page.get_by_text("Permutation 2 of 3:").wait_for()
    page.locator(".permutation-nav a", has_text="FLAVOUR=sweet").click()
    page.wait_for_url(re.compile(rf"/builds/{builds[2].pk}$"))
    assert page.dialogs == []


def test_swagger_ui_admin_and_the_lockout_page_work_under_the_csp(page: Any) -> None:
    User.objects.create_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    page.goto("/v4/documentation")
    page.get_by_text("/v4/pipelines", exact=True).first.wait_for()

    page.goto("/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Pipelines").first.wait_for()
    page.goto("/admin/pipelines/pipeline/")
    page.get_by_role("heading", name=re.compile("Select pipeline")).wait_for()

    page.context.clear_cookies()  # signed out, so /login/ shows its form
    for _ in range(5):
        page.goto("/login/")
        page.get_by_label("Username").fill("someone")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Too many failed sign-ins").wait_for()
    assert "wait 15 minutes" in page.content()
