"""Regenerate docs/screenshots/*.png: a seeded server, driven by Chromium (`make screenshots`)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.demo_data import BASE_DIR, configure, make_repo
from tools.live_stack import LiveStack

OUT = BASE_DIR / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
PASSWORD = "screenshots only"  # noqa: S105 - a throwaway account in a temporary database

CONFIG = """\
shared:
  image: node:22
parameters:
  region:
    value: [eu-west, us-east]
    description: Where deploy sends the release
jobs:
  main:
    requires: [~commit, ~pr]
    steps:
      - install: printf 'added \\033[1m214\\033[0m packages in 3s\\n'
      - test: >-
          for s in api models views; do printf '\\033[32mPASS\\033[0m tests/%s.test.js\\n' $s;
          sleep 0.2; done; printf '\\033[1mTests:\\033[0m \\033[32m42 passed\\033[0m, 42 total\\n'
  lint:
    requires: [~commit]
    steps:
      - eslint: printf '\\033[33mwarning\\033[0m  Unexpected console statement  no-console\\n'
  publish:
    requires: [main, lint]
    steps:
      - pack: echo "packing app-1.4.$SD_BUILD_ID.tgz"
  docs:
    requires: [main]
    steps:
      - build-docs: echo "building the docs"
  deploy:
    requires: [publish, docs]
    steps:
      - deploy: >-
          echo "deploying to $(meta get parameters.region.value || echo eu-west)";
          sleep 1; echo done
"""

# A matrix job (one permutation fails), a stage, and a trigger from webapp's publish job.
MATRIX_CONFIG = """\
shared:
  image: node:22
jobs:
  main:
    requires: [~commit, ~sd@{webapp}:publish]
    steps:
      - build: echo building
  test:
    requires: [main]
    matrix:
      NODE: ["18", "20", "22"]
      OS: [debian, alpine]
    steps:
      - test: 'echo "node $NODE on $OS"; [ "$NODE-$OS" != "18-alpine" ]'
  canary-deploy:
    steps:
      - deploy: echo "deploying to canary"
  canary-verify:
    requires: [canary-deploy]
    steps:
      - verify: echo "canary answers"
stages:
  canary:
    requires: [main]
    jobs: [canary-deploy, canary-verify]
    description: Deploys to the canary hosts
"""


def seed(root: Path) -> dict[str, Any]:
    """People, two pipelines, a secret, tokens; the events are started once the worker runs."""
    from django.conf import settings
    from django.contrib.auth.models import User

    from pipelines import services

    # Alice is no superuser: the operator allows the folder her repositories are in.
    settings.SD_LOCAL_REPO_ROOTS = [str(root)]
    alice = User.objects.create_user("alice", password=PASSWORD, first_name="Alice")
    (root / "acme").mkdir()
    repo = make_repo(
        root / "acme", "webapp", {"screwdriver.yaml": CONFIG}, "Add the release pipeline"
    )
    pipeline = services.create_pipeline(checkout_url=f"{repo}#main", user=alice)
    other = make_repo(
        root / "acme",
        "billing-service",
        {
            "screwdriver.yaml": "jobs:\n  main:\n    image: python:3.12\n    requires: [~commit]\n"
            "    steps:\n      - test: echo ok\n"
        },
        "Run the tests on every commit",
    )
    services.create_pipeline(checkout_url=f"{other}#main", user=alice)
    mobile = make_repo(
        root / "acme",
        "mobile-app",
        {"screwdriver.yaml": MATRIX_CONFIG.replace("{webapp}", str(pipeline.pk))},
        "Test on every Node version, then the canary stage",
    )
    matrix = services.create_pipeline(checkout_url=f"{mobile}#main", user=alice)
    services.create_secret(pipeline=pipeline, name="NPM_TOKEN", value="x", allow_in_pr=False)
    services.create_secret(pipeline=pipeline, name="DEPLOY_KEY", value="y", allow_in_pr=False)
    services.create_pipeline_token(pipeline=pipeline, name="release-bot", description="CD")
    services.create_user_token(user=alice, name="laptop", description="curl and scripts")
    return {"user": alice, "pipeline": pipeline, "matrix": matrix}


def run_events(seeded: dict[str, Any]) -> int:
    """Start an event and wait for its builds; return the id of the build to show."""
    from builds.models import Build
    from pipelines import services

    pipeline, alice = seeded["pipeline"], seeded["user"]
    creator = services.Creator(name="Alice", username=alice.get_username())
    event = services.start_event(pipeline=pipeline, start_from="~commit", creator=creator)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        builds = list(Build.objects.filter(event=event))
        if len(builds) == 5 and all(b.is_finished for b in builds):
            break
        time.sleep(0.3)
    matrix = services.start_event(pipeline=seeded["matrix"], start_from="~commit", creator=creator)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        matrix.refresh_from_db()
        if matrix.status not in ("CREATED", "IN_PROGRESS", "UNKNOWN"):
            builds = list(Build.objects.filter(event=matrix))
            if builds and all(b.is_finished for b in builds):
                break
        time.sleep(0.3)
    return Build.objects.get(event=event, job__name="main").pk


def shoot(url: str, pipeline_id: int, build_id: int, matrix_id: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=url, viewport={"width": 1100, "height": 720})
        page = context.new_page()
        page.goto("/login/")
        page.screenshot(path=str(OUT / "sign-in.png"))
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/pipelines")
        pages = [
            ("pipelines.png", "/pipelines", None),
            ("pipeline.png", f"/pipelines/{pipeline_id}", ".graph"),
            ("pipeline-matrix.png", f"/pipelines/{matrix_id}", ".graph .mark-link"),
            ("jobs.png", f"/pipelines/{pipeline_id}/jobs", None),
            ("build.png", f"/pipelines/{pipeline_id}/builds/{build_id}", ".ansi-fg-2"),
            ("secrets.png", f"/pipelines/{pipeline_id}/secrets", None),
            ("options.png", f"/pipelines/{pipeline_id}/options", None),
            ("user-settings.png", "/user-settings", None),
        ]
        for name, path, wait_for in pages:
            page.goto(path)
            if name == "build.png":
                page.locator("details:has(.step-name:text-is('test')) > summary").click()
                page.get_by_label("Timestamps").select_option("elapsed")
            if name == "pipeline-matrix.png":
                page.locator(".event-builds > summary").click()
            if wait_for:
                page.locator(wait_for).first.wait_for()
            # The pipeline page is shown down to its events list, below the graph.
            page.set_viewport_size(
                {"width": 1100, "height": 1000 if name.startswith("pipeline") else 720}
            )
            page.screenshot(path=str(OUT / name))
            shots.append(OUT / name)
        phone = browser.new_context(
            base_url=url,
            viewport={"width": 390, "height": 780},
            storage_state=context.storage_state(),
        ).new_page()
        phone.goto(f"/pipelines/{pipeline_id}/builds/{build_id}")
        phone.locator("details:has(.step-name:text-is('test')) > summary").click()
        phone.locator(".ansi-fg-2").first.wait_for()
        phone.screenshot(path=str(OUT / "build-phone.png"))
        shots.append(OUT / "build-phone.png")
        browser.close()
    return [OUT / "sign-in.png", *shots]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sd-screens-") as tmp:
        root = Path(tmp)
        env = configure(root / "data")
        seeded = seed(root)
        stack = LiveStack.start(
            database_url=env["DATABASE_URL"],
            data_dir=root / "data",
            secret_key=env["SD_SECRET_KEY"],
        )
        from django.conf import settings

        settings.SD_API_URL = stack.url
        try:
            build_id = run_events(seeded)
            shots = shoot(stack.url, seeded["pipeline"].pk, build_id, seeded["matrix"].pk)
        finally:
            stack.stop()
    total = sum(p.stat().st_size for p in shots)
    for shot in shots:
        print(f"{shot.relative_to(BASE_DIR)}  {shot.stat().st_size // 1024} KiB")
    print(f"{len(shots)} screenshots, {total // 1024} KiB in all")


if __name__ == "__main__":
    main()
