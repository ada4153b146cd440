"""`manage.py sd_gitlab_hook_token GROUP/PROJECT`: the token a hand-made GitLab hook carries."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from scm.signing import gitlab_hook_token


def run(*args: str) -> str:
    out = StringIO()
    call_command("sd_gitlab_hook_token", *args, stdout=out)
    return out.getvalue().strip()


def test_it_prints_the_token_the_projects_hook_must_carry(settings: Any) -> None:
    settings.SD_GITLAB_WEBHOOK_TOKEN = "server-secret"

    printed = run("acme/platform/diaspora")

    assert printed == gitlab_hook_token("acme/platform/diaspora") != "server-secret"
    assert run("Acme/Platform/Diaspora.git") == printed


@pytest.mark.django_db
def test_the_printed_token_is_accepted_for_that_project(settings: Any, client: Client) -> None:
    settings.SD_GITLAB_WEBHOOK_TOKEN = "server-secret"
    body = b'{"object_kind": "note", "project": {"path_with_namespace": "acme/app"}}'

    response = client.post(
        "/v4/webhooks",
        data=body,
        content_type="application/json",
        headers={
            "X-Gitlab-Event": "Note Hook",
            "X-Gitlab-Token": run("acme/app"),
            "Idempotency-Key": "n-1",
        },
    )

    assert response.status_code == 200, response.content


def test_it_refuses_without_a_server_secret_or_a_project_path(settings: Any) -> None:
    settings.SD_GITLAB_WEBHOOK_TOKEN = ""
    with pytest.raises(CommandError, match="SD_GITLAB_WEBHOOK_TOKEN is not set"):
        run("acme/app")
    settings.SD_GITLAB_WEBHOOK_TOKEN = "server-secret"
    with pytest.raises(CommandError, match="GROUP/PROJECT"):
        run("app")
