"""In Chromium, a person signs in and uses every form of the main pages; each does what its
label says, as the page and the API show afterwards."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acceptance.stack import FINISHED, Stack, builds_of, finished, git, log_lines, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="install Debian's chromium: apt-get install chromium"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api")

YAML = """
parameters:
  region:
    value: us-west-1
    description: Where it goes
  hold: ["no", "yes"]
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    secrets: [DEPLOY_KEY]
    steps:
      - show: echo "region=$(meta get parameters.region.value)"
      - hold: if [ "$(meta get parameters.hold.value)" = yes ]; then echo holding; sleep 600; fi
      - key: echo "key=$DEPLOY_KEY"
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


def _sign_in(page: Any, stack: Stack) -> None:
    password = (stack.data_dir / "admin-password").read_text().strip()
    page.goto("/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/pipelines$"))


def _latest_event(stack: Stack, pipeline_id: int) -> dict[str, Any]:
    events = stack.api().get(f"/pipelines/{pipeline_id}/events").json()
    return dict(max(events, key=lambda e: e["id"]))


def _main_build(stack: Stack, event_id: int) -> dict[str, Any]:
    return dict(wait_for(lambda: builds_of(stack, event_id), timeout=30, what="a build")[0])


def test_a_person_uses_every_form_of_the_main_pages(
    page: Any, stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, work = repo(YAML, name="browser")
    api = stack.api()
    _sign_in(page, stack)

    # Create pipeline.
    page.get_by_label("Checkout URL").fill(f"{bare}#main")
    page.get_by_role("button", name="Create pipeline").click()
    page.wait_for_url(re.compile(r"/pipelines/\d+"))
    pipeline_id = int(re.search(r"/pipelines/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    assert api.get(f"/pipelines/{pipeline_id}").json()["scmRepo"]["url"].endswith(f"{bare}#main")
    base = f"/pipelines/{pipeline_id}"

    # Add a secret: listed on the page and by the API, its value shown nowhere.
    page.goto(f"{base}/secrets")
    page.get_by_label("Name").fill("DEPLOY_KEY")
    page.get_by_label("Value").fill("s3cr3t-value")
    page.get_by_role("button", name="Add secret").click()
    page.wait_for_load_state()
    assert "DEPLOY_KEY" in page.content() and "s3cr3t-value" not in page.content()
    secrets = api.get(f"/pipelines/{pipeline_id}/secrets").json()
    assert [s["name"] for s in secrets] == ["DEPLOY_KEY"]
    assert "s3cr3t-value" not in str(secrets)

    # Start with parameters.
    page.goto(base)
    page.get_by_label("region").fill("eu-north-1")
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(rf"{base}/events/\d+"))
    first = _latest_event(stack, pipeline_id)
    assert first["meta"]["parameters"]["region"]["value"] == "eu-north-1"
    build = finished(stack, _main_build(stack, first["id"])["id"], timeout=120)
    assert build["status"] == "SUCCESS", build["statusMessage"]
    assert log_lines(stack, build["id"], "show") == ["region=eu-north-1"]
    assert log_lines(stack, build["id"], "key") == ["key=****"]

    # Stop: a held build, stopped from the event's page.
    page.goto(base)
    page.get_by_label("hold").select_option("yes")
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(rf"{base}/events/\d+"))
    held = _latest_event(stack, pipeline_id)
    held_build = _main_build(stack, held["id"])
    wait_for(
        lambda: "holding" in log_lines(stack, held_build["id"], "hold"),
        timeout=120,
        what="the build to hold",
    )
    page.goto(f"{base}/events/{held['id']}")
    page.get_by_role("button", name="Stop event").click()
    page.wait_for_load_state()
    stopped = finished(stack, held_build["id"], timeout=60)
    assert stopped["status"] == "ABORTED"

    # Restart, same commit and meta: a child event of the first one.
    new_sha = _push(work)
    page.goto(f"{base}/events/{first['id']}")
    page.get_by_label("Job", exact=True).select_option("main")
    page.get_by_label("Same commit, keep this event's meta").check()
    page.get_by_role("button", name="Restart", exact=True).click()
    page.wait_for_url(re.compile(rf"{base}/events/\d+"))
    inherit = _latest_event(stack, pipeline_id)
    assert inherit["parentEventId"] == first["id"] and inherit["sha"] == first["sha"]
    assert inherit["meta"]["parameters"]["region"]["value"] == "eu-north-1"

    # Restart, latest commit: a fresh event at the head of the branch.
    page.goto(f"{base}/events/{first['id']}")
    page.get_by_label("Job", exact=True).select_option("main")
    page.get_by_label("Latest commit, fresh event").check()
    page.get_by_role("button", name="Restart", exact=True).click()
    page.wait_for_url(re.compile(rf"{base}/events/\d+"))
    fresh = _latest_event(stack, pipeline_id)
    assert fresh["id"] != inherit["id"]
    assert fresh["sha"] == new_sha and not fresh.get("parentEventId")
    for event in (inherit, fresh):
        row = _main_build(stack, event["id"])
        assert finished(stack, row["id"], timeout=120)["status"] in FINISHED

    # Create a token (the person's own): shown once, and it works on the API.
    page.goto("/user-settings")
    page.get_by_label("Name").fill("from the browser")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state()
    value = page.locator("#new-token").inner_text().strip()
    assert value
    assert stack.api(value).get("/pipelines").status_code == 200
    page.reload()
    assert value not in page.content()

    # Validator: a good file's jobs, a broken file's error.
    page.goto("/validator")
    page.get_by_role("textbox", name="screwdriver.yaml").fill(YAML)
    page.get_by_role("button", name="Validate").click()
    page.wait_for_load_state()
    assert page.locator("#validator-ok").inner_text() == "This file is valid: 1 job."
    assert page.locator("#validator-jobs tr[data-job='main']").count() == 1
    page.get_by_role("textbox", name="screwdriver.yaml").fill("jobs:\n  main:\n    steps: 5\n")
    page.get_by_role("button", name="Validate").click()
    page.wait_for_load_state()
    assert "This file has errors" in page.locator("#validator-errors").inner_text()
    answer = stack.api().post("/validator", json={"yaml": "jobs:\n  main:\n    steps: 5\n"})
    assert answer.json().get("errors")


def _push(work: Path) -> str:
    (work / "CHANGES").write_text("a newer commit\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "newer", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)
