"""A template published by one pipeline's build runs in another pipeline's job, and the API
reads it under its namespaced name, as a user of `make run` meets it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acceptance.stack import Stack, finished, first_build, git, log_lines, start

pytestmark = pytest.mark.xdist_group("builds")

SD_TEMPLATE = """\
namespace: acme
name: greet
version: '1.2'
description: Says hello
maintainer: alice@example.com
config:
  image: buildpack-deps
  steps:
    - greet: echo "hello from $SD_TEMPLATE_FULLNAME@$SD_TEMPLATE_VERSION"
"""
PUBLISHER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - validate: template-validate
      - publish: template-publish --tag stable
"""
USER = """
jobs:
  main:
    requires: [~commit]
    template: acme/greet@stable
"""


def test_a_published_template_runs_in_another_pipeline(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, work = repo(PUBLISHER, name="greet-template")
    (work / "sd-template.yaml").write_text(SD_TEMPLATE)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "the template", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    row = first_build(stack, start(stack, bare))
    ended = finished(stack, row["id"], timeout=120)
    assert ended["status"] == "SUCCESS", log_lines(stack, row["id"], "publish")
    assert log_lines(stack, row["id"], "publish") == [
        "Template acme/greet@1.2.0 was successfully published and tagged as stable"
    ]

    api = stack.api()
    found = api.get("/templates/acme%2Fgreet/stable")
    assert found.status_code == 200, found.text
    assert (found.json()["namespace"], found.json()["version"]) == ("acme", "1.2.0")

    user_bare, _ = repo(USER, name="greet-user")
    used = first_build(stack, start(stack, user_bare))
    assert finished(stack, used["id"], timeout=120)["status"] == "SUCCESS"
    assert log_lines(stack, used["id"], "greet") == ["hello from acme/greet@1.2.0"]


SD_PIPELINE_TEMPLATE = """\
namespace: acme
name: pipe
version: '2.0'
description: One job that says which template it came from
maintainer: alice@example.com
config:
  shared:
    image: buildpack-deps
  jobs:
    main:
      requires: [~commit]
      steps:
        - hello: echo "$GREETING from $SD_PIPELINE_TEMPLATE_FULLNAME@$SD_PIPELINE_TEMPLATE_VERSION"
      environment:
        GREETING: hello
"""
PIPELINE_PUBLISHER = """
jobs:
  main:
    image: buildpack-deps
    requires: [~commit]
    steps:
      - validate: pipeline-template-validate
      - publish: pipeline-template-publish --tag stable
"""
PIPELINE_USER = """
template: acme/pipe@stable
jobs:
  main:
    environment:
      GREETING: hi
"""


def test_a_published_pipeline_template_is_another_pipelines_whole_config(
    stack: Stack, repo: Callable[..., tuple[Path, Path]]
) -> None:
    bare, work = repo(PIPELINE_PUBLISHER, name="pipe-template")
    (work / "sd-template.yaml").write_text(SD_PIPELINE_TEMPLATE)
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "the pipeline template", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    row = first_build(stack, start(stack, bare))
    ended = finished(stack, row["id"], timeout=120)
    assert ended["status"] == "SUCCESS", log_lines(stack, row["id"], "publish")
    assert log_lines(stack, row["id"], "publish") == [
        "Pipeline template acme/pipe@2.0.0 was successfully published and tagged as stable"
    ]

    found = stack.api().get("/pipeline/template/acme/pipe/stable")
    assert found.status_code == 200, found.text
    assert (found.json()["name"], found.json()["version"]) == ("pipe", "2.0.0")

    user_bare, _ = repo(PIPELINE_USER, name="pipe-user")
    used = first_build(stack, start(stack, user_bare))
    assert finished(stack, used["id"], timeout=120)["status"] == "SUCCESS"
    assert log_lines(stack, used["id"], "hello") == ["hi from acme/pipe@2.0.0"]
