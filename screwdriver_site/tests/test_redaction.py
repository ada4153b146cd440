"""A credential in a query string (`?api_token=X`) is written to no log and no error report."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.views.debug import technical_500_response

from conftest import database_url, wait_until
from pipelines.services import create_user_token
from screwdriver_site.redaction import redact_query, redact_text
from tools.live_stack import LiveStack

SECRET = "SECRETVALUE"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/v4/auth/token?api_token=abc", "/v4/auth/token?api_token=[redacted]"),
        ("/x?page=2&token=abc&count=5", "/x?page=2&token=[redacted]&count=5"),
        (
            "/x?access_token=abc&Client_Secret=def",
            "/x?access_token=[redacted]&Client_Secret=[redacted]",
        ),
        ("/x?api%5Ftoken=abc", "/x?api%5Ftoken=[redacted]"),
        (
            "/accounts/github/login/callback/?code=abc&state=xyz",
            "/accounts/github/login/callback/?code=[redacted]&state=xyz",
        ),
        (
            "/x?sort=ascending&sortBy=name&search=token",
            "/x?sort=ascending&sortBy=name&search=token",
        ),
        ("/v4/status", "/v4/status"),
        # The token of a capability address of a build's artifacts is in the path.
        (
            "/v4/builds/3/artifacts-view/3.2.0.17.aB-_9/report/style.css",
            "/v4/builds/3/artifacts-view/[redacted]/report/style.css",
        ),
        (
            "/v4/builds/3/artifacts-view/3.2.0.17.aB?api_token=x",
            "/v4/builds/3/artifacts-view/[redacted]?api_token=[redacted]",
        ),
    ],
)
def test_it_redacts_the_value_of_every_credential_parameter_only(uri: str, expected: str) -> None:
    assert redact_query(uri) == expected


def test_it_redacts_an_address_inside_text_even_html_escaped() -> None:
    text = "<ASGIRequest: GET '/v4/auth/token?page=1&amp;api_token=abc'> and ?token=def"
    assert redact_text(text) == (
        "<ASGIRequest: GET '/v4/auth/token?page=1&amp;api_token=[redacted]'> and ?token=[redacted]"
    )
    view = "<ASGIRequest: GET '/v4/builds/3/artifacts-view/3.2.0.17.aB/x.css'>"
    assert redact_text(view) == "<ASGIRequest: GET '/v4/builds/3/artifacts-view/[redacted]/x.css'>"


def test_the_debug_page_shows_no_credential_from_the_query_string() -> None:
    request = RequestFactory().get("/v4/pipelines", {"api_token": SECRET, "page": "2"})
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        api_token = request.GET["api_token"]  # a local a view might hold
        response = technical_500_response(request, type(exc), exc, exc.__traceback__)
        assert api_token
    body = response.content.decode()
    assert "boom" in body
    assert SECRET not in body
    assert "api_token=[redacted]" in body


@pytest.fixture
def live(transactional_db: None, tmp_path: Path) -> Iterator[LiveStack]:
    """The server as `make run` starts it, logging every request (SD_LOG_LEVEL=INFO)."""
    stack = LiveStack.start(
        database_url=database_url(),
        data_dir=tmp_path / "sd-data",
        secret_key=django_settings.SECRET_KEY,
        extra_env={"SD_LOG_LEVEL": "INFO"},
        worker=False,
    )
    yield stack
    stack.stop()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_token_in_the_query_string_reaches_no_server_log(live: LiveStack) -> None:
    user = User.objects.create_user("alice")
    good = create_user_token(user=user, name="cli").value
    assert _get(f"{live.url}/v4/auth/token?api_token={good}") == 200
    assert _get(f"{live.url}/v4/auth/token?api_token={SECRET}") == 401
    assert _get(f"{live.url}/v4/pipelines?page=1&token={SECRET}1&access_token={SECRET}2") == 401
    assert _get(f"{live.url}/no/such/page?api_token={SECRET}3") == 404
    assert _get(f"{live.url}/v4/builds/1/artifacts-view/{SECRET}4/x.css") == 403

    log = live.data_dir / "server.log"
    wait_until(lambda: "/no/such/page?" in log.read_text(), what="the access log line")
    live.stop_server()
    text = log.read_text()
    written = "".join(path.read_text(errors="replace") for path in live.data_dir.rglob("*.log"))
    assert good not in written and SECRET not in written, text
    assert '"GET /v4/auth/token?api_token=[redacted]" 200' in text, text
    assert '"GET /v4/auth/token?api_token=[redacted]" 401' in text, text
    assert "token=[redacted]&access_token=[redacted]" in text, text
    assert '"GET /no/such/page?api_token=[redacted]" 404' in text, text
    # Django's own request log names the path only.
    assert "Not Found: /no/such/page" in text, text
    assert '"GET /v4/builds/1/artifacts-view/[redacted]/x.css" 403' in text, text
    assert "Forbidden: /v4/builds/1/artifacts-view/[redacted]/x.css" in text, text


def test_error_responses_never_echo_the_query_string(client: Any, db: None) -> None:
    for path in ("/v4/auth/token", "/v4/pipelines", "/v4/no/such/route", "/no/such/page"):
        response = client.get(path, {"api_token": SECRET, "token": SECRET})
        assert response.status_code >= 400
        assert SECRET not in response.content.decode(), path
