"""Management commands: `sd_token create` and `sd_validate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from conftest import BASE_DIR, database_url
from pipelines.models import Token

pytestmark = pytest.mark.django_db

VALID = """
shared:
  image: node:18
jobs:
  main:
    requires: [~commit]
    steps:
      - test: echo test
  publish:
    requires: [main]
    steps:
      - publish: echo publish
"""

BROKEN = """
jobs:
  main:
    steps: 5
"""


def sd_token(*args: str) -> str:
    out = StringIO()
    call_command("sd_token", "create", *args, stdout=out)
    return out.getvalue()


def authenticates(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/v4/pipelines").status_code


def manage(
    *args: str, tmp_path: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run manage.py as a person would, on the test database."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url(),
        "SD_DATA_DIR": str(tmp_path / "data"),
        "SD_SECRET_KEY": django_settings.SECRET_KEY,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- sd_token -------------------------------------------------------------------------------


def test_sd_token_prints_only_a_token_on_one_line() -> None:
    printed = sd_token("--username", "dave")

    assert printed.endswith("\n")
    lines = printed.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert token == token.strip() and len(token) >= 32 and " " not in token


def test_sd_token_creates_the_user_when_missing() -> None:
    sd_token("--username", "dave")

    user = get_user_model().objects.get(username="dave")
    assert not user.is_superuser and not user.is_staff
    assert not user.has_usable_password()


def test_the_printed_token_authenticates_against_the_api() -> None:
    token = sd_token("--username", "dave").strip()

    assert authenticates(token) == 200
    exchanged = APIClient().get("/v4/auth/token", {"api_token": token})
    assert exchanged.status_code == 200 and exchanged.json()["token"]


def test_sd_token_admin_makes_a_superuser() -> None:
    sd_token("--username", "root", "--admin")

    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff


def test_sd_token_for_an_existing_user_adds_a_token_and_keeps_the_password() -> None:
    user = get_user_model().objects.create_user(username="erin", password="pw-erin-12345")

    first = sd_token("--username", "erin").strip()
    second = sd_token("--username", "erin", "--admin").strip()

    assert first != second
    assert authenticates(first) == authenticates(second) == 200
    user.refresh_from_db()
    assert user.check_password("pw-erin-12345")
    assert user.is_superuser
    assert Token.objects.filter(user=user).count() == 2


def test_sd_token_stores_only_a_hash_of_the_token() -> None:
    token = sd_token("--username", "dave").strip()

    stored = Token.objects.get(user__username="dave")
    assert stored.hash == Token.hash_value(token)
    assert token not in stored.hash


@pytest.mark.parametrize("username", ["  ", "build:1", "a b"])
def test_sd_token_refuses_a_username_that_is_empty_or_not_a_username(username: str) -> None:
    with pytest.raises(CommandError, match="is not a valid username"):
        sd_token("--username", username)
    assert not get_user_model().objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sd_token_run_from_the_shell_prints_nothing_but_the_token(tmp_path: Path) -> None:
    done = manage("sd_token", "create", "--username", "frank", "--admin", tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert authenticates(lines[0]) == 200
    assert get_user_model().objects.get(username="frank").is_superuser


# --- sd_validate ----------------------------------------------------------------------------


def validator(yaml_text: str) -> dict[str, object]:
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user(username="val"))
    response = client.post("/v4/validator", {"yaml": yaml_text}, format="json")
    assert response.status_code == 200
    return response.json()


def test_sd_validate_prints_what_the_validator_endpoint_returns(tmp_path: Path) -> None:
    path = tmp_path / "screwdriver.yaml"
    path.write_text(VALID)
    out = StringIO()

    call_command("sd_validate", str(path), stdout=out)

    printed = json.loads(out.getvalue())
    assert printed == validator(VALID)
    assert set(printed["jobs"]) == {"main", "publish"}
    assert "errors" not in printed


def test_sd_validate_exits_non_zero_for_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "screwdriver.yaml"
    path.write_text(BROKEN)
    out = StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("sd_validate", str(path), stdout=out)

    assert exited.value.code not in (0, None)
    printed = json.loads(out.getvalue())
    assert printed == validator(BROKEN)
    assert printed["errors"]


def test_sd_validate_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("sd_validate", str(tmp_path / "missing.yaml"), stdout=StringIO())


@pytest.mark.slow
@pytest.mark.parametrize(("text", "code"), [(VALID, 0), (BROKEN, 1), ("jobs: [", 1)])
def test_sd_validate_from_the_shell_prints_json_and_sets_the_exit_code(
    tmp_path: Path, text: str, code: int
) -> None:
    path = tmp_path / "screwdriver.yaml"
    path.write_text(text)

    done = manage("sd_validate", str(path), tmp_path=tmp_path)

    assert done.returncode == code, done.stderr
    assert json.loads(done.stdout) == validator(text)


@pytest.mark.slow
def test_sd_validate_reads_stdin_for_a_dash(tmp_path: Path) -> None:
    done = manage("sd_validate", "-", tmp_path=tmp_path, stdin=VALID)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == validator(VALID)
