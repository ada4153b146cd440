"""Every HTML page carries the Content-Security-Policy; the pages hold nothing it forbids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conftest import BASE_DIR

pytestmark = pytest.mark.django_db

POLICY_PARTS = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)
# What the policy refuses in a page: inline scripts, event handler attributes, inline styles.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|\son[a-z]+\s*=|\sstyle\s*=|<style",
    flags=re.IGNORECASE,
)


@pytest.fixture
def signed_in() -> Client:
    user = User.objects.create_user("root", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/login/",
        "/pipelines",
        "/validator",
        "/user-settings",
        "/admin/",
        "/v4/documentation",
        "/no/such/page",
    ],
)
def test_html_pages_carry_the_policy_and_nothing_it_refuses(signed_in: Client, path: str) -> None:
    response = signed_in.get(path, follow=True)
    assert response["Content-Type"].startswith("text/html"), path
    policy = response["Content-Security-Policy"]
    assert all(part in policy for part in POLICY_PARTS), policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert not INLINE.findall(response.content.decode()), path


def test_api_answers_carry_no_page_policy(signed_in: Client) -> None:
    response = signed_in.get("/v4/status")
    assert "Content-Security-Policy" not in response


def test_the_swagger_page_loads_its_start_up_script_from_a_url(signed_in: Client) -> None:
    page = signed_in.get("/v4/documentation").content.decode()
    script = re.search(r'<script src="([^"]*script=[^"]*)"', page)
    assert script, page
    code = signed_in.get(script[1].replace("&amp;", "&"))
    assert code.status_code == 200
    assert "SwaggerUIBundle" in code.content.decode()


def test_no_template_holds_an_inline_script_handler_or_style() -> None:
    found = {
        str(path.relative_to(BASE_DIR)): INLINE.findall(path.read_text())
        for path in Path(BASE_DIR, "templates").rglob("*.html")
    }
    assert not {name: hits for name, hits in found.items() if hits}


def test_sd_csp_replaces_the_policy_and_empty_sends_none(client: Client, settings: Any) -> None:
    settings.SD_CSP = "default-src 'none'"
    assert client.get("/login/")["Content-Security-Policy"] == "default-src 'none'"
    settings.SD_CSP = ""
    assert "Content-Security-Policy" not in client.get("/login/")
