"""A worker on a host of its own: what it needs, and what stops it before it starts builds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import BASE_DIR
from screwdriver_site.topology import check_worker, is_local_address

POSTGRES = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("[::1]", True),
        ("0.0.0.0", True),
        ("10.0.0.5", False),
        ("api.internal", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_names_and_addresses_are_told_apart(host: str, local: bool) -> None:
    assert is_local_address(host) is local


def test_a_remote_worker_with_shared_settings_starts_without_a_word() -> None:
    check = check_worker(
        remote=True,
        api_url="http://api.internal:8000",
        database_engine=POSTGRES,
        secret_key_set=True,
        redis_url="redis://redis.internal:6379/0",
    )
    assert check.errors == [] and check.warnings == []


def test_a_remote_worker_refuses_what_only_works_on_the_apis_host() -> None:
    check = check_worker(
        remote=True,
        api_url="http://127.0.0.1:8000",
        database_engine=SQLITE,
        secret_key_set=False,
        redis_url="",
    )
    text = "\n".join(check.errors)
    assert "SD_API_URL is http://127.0.0.1:8000, a loopback address" in text
    assert "SQLite" in text
    assert "SD_SECRET_KEY is not set" in text
    assert len(check.errors) == 3
    assert any("SD_REDIS_URL is not set" in w for w in check.warnings)


def test_a_worker_on_a_database_server_with_a_loopback_api_is_only_warned() -> None:
    check = check_worker(
        remote=False,
        api_url="http://localhost:8000",
        database_engine=POSTGRES,
        secret_key_set=False,
        redis_url="",
    )
    assert check.errors == []
    assert len(check.warnings) == 1 and "SD_WORKER_REMOTE=true" in check.warnings[0]
    # The embedded default (SQLite, everything on one host) says nothing.
    quiet = check_worker(
        remote=False,
        api_url="http://127.0.0.1:8000",
        database_engine=SQLITE,
        secret_key_set=False,
        redis_url="",
    )
    assert quiet.errors == [] and quiet.warnings == []


def test_an_api_address_that_is_no_url_stops_any_worker() -> None:
    check = check_worker(
        remote=False,
        api_url="api.internal:8000",
        database_engine=SQLITE,
        secret_key_set=True,
        redis_url="",
    )
    assert check.errors and "not an http(s) URL" in check.errors[0]


def test_sd_worker_on_another_host_with_a_loopback_api_exits_with_the_reasons(
    tmp_path: object,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SD_", "DATABASE_URL", "DJANGO_SETTINGS"))
    }
    env.update(
        {
            "SD_DATA_DIR": str(tmp_path),
            "SD_WORKER_REMOTE": "true",
            "SD_API_URL": "http://localhost:8000",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "sd_worker"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "This worker cannot start" in result.stderr
    assert "SD_API_URL is http://localhost:8000, a loopback address" in result.stderr
    assert "SD_SECRET_KEY is not set" in result.stderr
    # It stopped before it scheduled anything or started a cluster.
    assert "Periodic tasks scheduled" not in result.stdout
