"""The validator page: paste a screwdriver.yaml, see jobs, graph, errors and warnings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pipelines.models import Template, TemplateTag
from pipelines.template_store import database_templates

CHROMIUM = Path("/usr/bin/chromium")
VALID = (
    "jobs:\n  main:\n    image: alpine\n    requires: [~commit]\n    steps:\n      - build: make\n"
    "  deploy:\n    image: alpine\n    requires: [main]\n    steps:\n      - ship: ./ship.sh\n"
)
BROKEN = "jobs:\n  main:\n    image: alpine\n    steps: []\n"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def signed_in(client: Client, django_user_model: type[User]) -> Client:
    """A client signed in as a plain member."""
    user = django_user_model.objects.create_user(username="member", password="pw-member-1")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_validator_needs_a_signed_in_person(client: Client) -> None:
    response = client.get(reverse("pipelines:validator"))

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_it_shows_the_jobs_and_graph_of_a_valid_file(signed_in: Client) -> None:
    response = signed_in.post(reverse("pipelines:validator"), {"yaml": VALID})

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="validator-ok"' in body
    assert 'data-job="deploy"' in body and "./ship.sh" in body
    assert 'class="graph"' in body


@pytest.mark.django_db
def test_it_shows_the_errors_of_a_broken_file(signed_in: Client) -> None:
    response = signed_in.post(reverse("pipelines:validator"), {"yaml": BROKEN})

    body = response.content.decode()
    assert 'id="validator-errors"' in body
    assert "must contain at least 1 items" in body


@pytest.mark.django_db
def test_it_escapes_everything_it_shows(signed_in: Client) -> None:
    text = f"jobs:\n  main:\n    image: alpine\n    steps:\n      - run: echo '{XSS}'\n"

    response = signed_in.post(reverse("pipelines:validator"), {"yaml": text})

    body = response.content.decode()
    assert XSS not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


@pytest.mark.django_db
def test_it_resolves_job_templates_from_the_database(signed_in: Client) -> None:
    Template.objects.create(
        namespace="acme",
        name="deploy",
        version="1.2.0",
        config={"image": "stable", "steps": [{"deploy": "./deploy.sh"}]},
        images={"stable": "acme/deployer:1"},
    )
    TemplateTag.objects.create(namespace="acme", name="deploy", tag="stable", version="1.2.0")

    response = signed_in.post(
        reverse("pipelines:validator"),
        {"yaml": "jobs:\n  main:\n    template: acme/deploy@stable\n"},
    )

    body = response.content.decode()
    assert 'id="validator-ok"' in body
    assert "acme/deployer:1" in body and "./deploy.sh" in body


@pytest.mark.django_db
def test_the_database_store_picks_versions_as_screwdriver_does() -> None:
    for number, published in enumerate(["1.0.0", "1.10.0", "1.9.3", "2.0.0"]):
        Template.objects.create(
            namespace="default", name="node", version=published, config={"n": number}
        )
    TemplateTag.objects.create(namespace="default", name="node", tag="stable", version="1.9.3")

    def version(reference: str | None) -> Any:
        found = database_templates("default", "node", reference)
        return found["version"] if found else None

    assert version("1") == "1.10.0"
    assert version("1.9") == "1.9.3"
    assert version("stable") == "1.9.3"
    assert version(None) == "2.0.0"
    assert version("3") is None and version("beta") is None


# --- in a real browser ---------------------------------------------------------------------


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A chromium page driven by playwright; skips where Debian's chromium is missing."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is needed for the browser tests (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; our DB calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.browser
def test_a_person_validates_a_file_and_a_broken_one_in_a_browser(
    live_server: Any, django_user_model: type[User], browser_page: Any
) -> None:
    django_user_model.objects.create_user(username="member", password="pw-member-1")
    page = browser_page
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "member")
    page.fill("input[name=password]", "pw-member-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/pipelines")

    page.click("text=Validator")
    page.fill("#id_yaml", VALID)
    page.click("#validate-button")

    assert "valid: 2 jobs" in page.inner_text("#validator-ok")
    assert page.locator('#validator-jobs tr[data-job="deploy"]').count() == 1
    assert page.locator('svg.graph g[data-job="main"]').count() == 1
    assert page.input_value("#id_yaml") == VALID

    page.fill("#id_yaml", BROKEN)
    page.click("#validate-button")

    assert "must contain at least 1 items" in page.inner_text("#validator-errors")
    assert page.locator("#validator-ok").count() == 0
