"""Safe by default: no debug pages, no settings in any error, a private data folder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from conftest import BASE_DIR
from screwdriver_site.api.tokens import issue_user_token
from screwdriver_site.data_dir import private_dir, private_file
from screwdriver_site.errors import CleansingFilter

LEAKS = ("Traceback", "DATABASE_URL", "SECRET_KEY", "sqlite:///", "settings.py", "DEBUG")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SD_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def _manage(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_debug_is_off_unless_sd_debug_says_so_in_either_mode(tmp_path: Path) -> None:
    show = "from django.conf import settings; print(settings.DEBUG)"
    assert _manage(tmp_path, "shell", "-c", show).stdout.split()[-1] == "False"
    assert _manage(tmp_path, "shell", "-c", show, SD_MODE="embedded").stdout.split()[-1] == "False"
    assert _manage(tmp_path, "shell", "-c", show, SD_DEBUG="true").stdout.split()[-1] == "True"


@pytest.mark.slow
def test_a_new_data_folder_is_private_and_so_is_everything_in_it(tmp_path: Path) -> None:
    done = _manage(tmp_path, "migrate", "--noinput")
    assert done.returncode == 0, done.stderr

    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for entry in data.iterdir():
        mode = stat.S_IMODE(entry.stat().st_mode)
        assert mode == (0o700 if entry.is_dir() else 0o600), f"{entry.name} is {mode:o}"
    assert {"db.sqlite3", "secret_key"} <= {entry.name for entry in data.iterdir()}


def test_an_existing_data_folder_of_ours_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "var"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_private_file_is_0600_from_its_creation_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        assert private_file(tmp_path / "key", "secret")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    # An existing file keeps what it holds.
    assert not private_file(tmp_path / "key", "other")
    assert (tmp_path / "key").read_text() == "secret"


def test_reports_hide_connection_urls_and_keys_even_in_debug_pages(settings: Any) -> None:
    settings.DATABASE_URL = "postgres://sd:hunter2@db.internal:5432/sd"
    settings.REDIS_URL = "redis://:hunter2@redis.internal:6379/0"
    settings.Q_CLUSTER = {"name": "screwdriver", "redis": settings.REDIS_URL}
    settings.CHANNEL_LAYERS = {"default": {"CONFIG": {"hosts": [settings.REDIS_URL]}}}
    # Slack workspaces' bot tokens, by workspace name.
    settings.SD_SLACK_WORKSPACES = {"team-b": "hunter2"}
    safe = CleansingFilter().get_safe_settings()
    names = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DATABASES", "SD_GITHUB_TOKEN")
    for name in (*names, "Q_CLUSTER", "CHANNEL_LAYERS", "SD_SLACK_WORKSPACES"):
        assert "hunter2" not in str(safe[name]), name
    request = RequestFactory().get(
        "/",
        DATABASE_URL="postgres://sd:hunter2@db/sd",
        HTTP_AUTHORIZATION="Bearer hunter2",
        SD_SLACK_WORKSPACES="team-b=hunter2",
    )
    meta = CleansingFilter().get_safe_request_meta(request)
    assert "hunter2" not in str(meta["SD_SLACK_WORKSPACES"])
    assert "hunter2" not in str(meta["DATABASE_URL"])
    assert "hunter2" not in str(meta["HTTP_AUTHORIZATION"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/v4/status", "/v4/pipelines"])
def test_a_bad_host_header_gets_a_400_that_shows_nothing_of_the_server(path: str) -> None:
    response = Client().get(path, HTTP_HOST="evil.example")
    assert response.status_code == 400
    body = response.content.decode()
    assert not any(leak in body for leak in LEAKS)
    if path.startswith("/v4/"):
        assert response.json()["statusCode"] == 400


@pytest.mark.django_db
def test_an_unknown_address_is_a_plain_page_and_an_unknown_route_a_json_error() -> None:
    page = Client().get("/no/such/page")
    assert page.status_code == 404 and "Not found" in page.content.decode()
    assert not any(leak in page.content.decode() for leak in LEAKS)
    api = Client().get("/v4/no/such/route")
    assert api.status_code == 404
    assert api.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "There is no such route: see /v4/documentation.",
    }


@pytest.mark.django_db
def test_an_oversized_body_is_refused_with_413_and_no_details(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    User.objects.create_user(username="alice")
    token = issue_user_token(username="alice", is_admin=False)
    body = json.dumps({"yaml": "x" * 4096})
    api = Client().post(
        "/v4/validator", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert api.status_code == 413, api.content
    assert api.json()["message"] == "The request body is larger than this server accepts."
    page = Client().post("/login/", {"username": "x" * 4096, "password": "p"})
    assert page.status_code == 413
    assert not any(leak in page.content.decode() for leak in LEAKS)


SHOW_HEADERS = """
import json
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
page = Client().get("/login/", secure=True)
api = Client().get("/v4/status", secure=True)
plain = Client().get("/login/")
print(json.dumps({
    "page": dict(page.headers),
    "api": dict(api.headers),
    "plain": dict(plain.headers),
    "csrf_cookie": page.cookies["csrftoken"].output(),
}))
"""


def _headers(tmp_path: Path, **extra: str) -> dict[str, Any]:
    # An in-memory database, migrated by the snippet itself, so nothing is left on disk.
    done = _manage(tmp_path, "shell", "-c", SHOW_HEADERS, DATABASE_URL="sqlite://:memory:", **extra)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_production_sends_hsts_secure_cookies_and_the_page_policy(tmp_path: Path) -> None:
    shown = _headers(tmp_path, SD_MODE="production", SD_SECRET_KEY="k" * 50)
    page, api = shown["page"], shown["api"]
    assert page["Strict-Transport-Security"] == "max-age=31536000"
    assert api["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in shown["plain"]  # only over HTTPS, as HSTS says
    assert "; Secure" in shown["csrf_cookie"]
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


@pytest.mark.slow
def test_production_hsts_takes_subdomains_and_preload_only_when_asked(tmp_path: Path) -> None:
    shown = _headers(
        tmp_path,
        SD_MODE="production",
        SD_SECRET_KEY="k" * 50,
        SD_HSTS_SECONDS="600",
        SD_HSTS_INCLUDE_SUBDOMAINS="true",
        SD_HSTS_PRELOAD="true",
    )
    assert shown["page"]["Strict-Transport-Security"] == "max-age=600; includeSubDomains; preload"


@pytest.mark.slow
def test_embedded_mode_sends_no_hsts_and_plain_cookies(tmp_path: Path) -> None:
    shown = _headers(tmp_path)
    assert "Strict-Transport-Security" not in shown["page"]
    assert "; Secure" not in shown["csrf_cookie"]
    assert "script-src 'self'" in shown["page"]["Content-Security-Policy"]
