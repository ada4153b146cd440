"""schemathesis against `make run`: no operation answers with a server error, for anyone."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acceptance.stack import QUICK, Stack, new_stack, start
from tools.api_fuzz import fuzz_api

pytestmark = pytest.mark.xdist_group("fuzz")

EXAMPLES = int(os.environ.get("SD_ACCEPTANCE_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the fuzzer deletes and changes what it finds."""
    # The owner is no superuser: the operator allows the folder the test's repositories are in.
    stack = new_stack("fuzz", SD_LOCAL_REPO_ROOTS=str(tmp_path_factory.getbasetemp()))
    yield stack
    stack.kill()


@pytest.mark.parametrize("persona", ["owner", "outsider"])
def test_no_operation_answers_with_a_server_error(
    fuzzed: Stack, repo: Callable[..., tuple[Path, Path]], tmp_path: Path, persona: str
) -> None:
    owner = fuzzed.manage("sd_token", "create", "--username", "owner")
    outsider = fuzzed.manage("sd_token", "create", "--username", "outsider")
    # The owner's pipeline, with an event and a build, for the fuzzer to find.
    bare, _ = repo(QUICK, name=f"fuzzed-{persona}")
    created = fuzzed.api(owner).post("/pipelines", json={"checkoutUrl": f"{bare}#main"})
    assert created.status_code == 201, created.text
    start(fuzzed, bare)
    token = {"owner": owner, "outsider": outsider}[persona]

    done = fuzz_api(fuzzed.url, token=token, examples=EXAMPLES, seed=12, workdir=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
