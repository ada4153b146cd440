"""schemathesis against the running API: no operation of /v4/swagger.json answers with a 5xx,
whoever calls it: an admin, the pipeline's owner (no admin rights), and a signed-in outsider.

`make test` runs SD_FUZZ_EXAMPLES examples per operation (default 25) with a fixed seed, in
the examples and fuzzing phases; docs/api.md gives the release check's larger budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from conftest import GitRepo
from pipelines.services import create_secret
from pipelines.tests.api_fixtures import CHAIN, make_world
from screwdriver_site.api.tokens import issue_user_token
from tools.api_fuzz import fuzz_api

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.django_db(transaction=True)]

EXAMPLES = int(os.environ.get("SD_FUZZ_EXAMPLES", "25"))
# The coverage and stateful phases take minutes: the release check adds them (docs/api.md).
PHASES = os.environ.get("SD_FUZZ_PHASES", "examples,fuzzing")


@pytest.mark.parametrize("persona", ["admin", "owner", "outsider"])
def test_no_operation_answers_with_a_server_error(
    live_server: Any,
    make_repo: Callable[..., GitRepo],
    settings: Any,
    tmp_path: Path,
    persona: str,
) -> None:
    settings.SD_API_URL = "http://127.0.0.1:9"
    User.objects.create_superuser(username="root")
    owner = User.objects.create_user(username="owner")
    User.objects.create_user(username="outsider")
    world = make_world(owner, make_repo({"screwdriver.yaml": CHAIN}))
    create_secret(pipeline=world.pipeline, name="DEPLOY_KEY", value="v", allow_in_pr=False)
    # A JWT rather than an API token: the fuzzer may delete token rows, not this.
    username = {"admin": "root", "owner": "owner", "outsider": "outsider"}[persona]
    token = issue_user_token(username=username, is_admin=persona == "admin")

    done = fuzz_api(
        live_server.url, token=token, examples=EXAMPLES, seed=4, workdir=tmp_path, phases=PHASES
    )

    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
