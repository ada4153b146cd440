"""Differential tests: our parser against Screwdriver's own (npm screwdriver-config-parser)."""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import install_npm_packages
from pipelines.config import parse_pipeline_yaml, resolve_template
from pipelines.config.notifications import TLDS_FILE, TOP_LEVEL_DOMAINS
from pipelines.config.pipeline_template import validate_pipeline_template
from pipelines.models import PipelineTemplateTag, PipelineTemplateVersion, Template, TemplateTag
from pipelines.services import (
    Publisher,
    publish_pipeline_template,
    publish_template,
    tag_pipeline_template,
    tag_template,
)
from pipelines.template_store import database_pipeline_templates, database_templates
from pipelines.tests.config_generator import generated_configs
from pipelines.tests.factories import pipeline_from_yaml

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "oracle"
FIXTURE_DIR = Path(__file__).parent / "fixtures"
FIXTURES = sorted((FIXTURE_DIR / "configs").glob("*.yaml"))
TEMPLATE_STORE: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURE_DIR / "templates.json").read_text()
)
GENERATED_COUNT = 600
# Cases whose error text differs on purpose: only "it is an error" is compared.
ERRORS_ONLY_MARK = "# oracle: errors-only"

# Addresses for ``settings.email``: the reference's Joi checks the top-level domain against
# IANA's list, after writing an international domain in ASCII as a URL host does.
ADDRESSES = [
    "a@example.com",
    "a@example.dev",
    "a@example.museum",
    "a@example.photography",
    "a@shop.amazon",
    "a@example.co.uk",
    "a@example.xn--p1ai",
    "a@EXAMPLE.XN--P1AI",
    "a@пример.рф",
    "a@例子.中国",
    "a@bücher.de",
    "a@xn--bcher-kva.de",
    "a@xn--zz.com",
    "a@☃.com",
    "a@faß.de",
    "a@example。com",
    "ü@example.com",
    "A@EXAMPLE.COM",
    "First.Last+tag@Example.Dev",
    "x@y.z",
    "a@example.c",
    "a@example.comm",
    "a@example.invalid",
    "a@example.local",
    "a@example.test",
    "a@example.xn--zz",
    "a@пример.испытание",
    "a@example.com.",
    "a@example.dev.",
    "a@example.123",
    "a@1.2.3.4",
    "a@2130706433",
    "a@localhost",
    "a@COM",
    "a@.com",
    "a@example..com",
    "a@-example.com",
    "a@example-.com",
    "a@" + "l" * 64 + ".com",
    "a.@example.com",
    "a b@example.com",
    "a@example.com@example.com",
    "a@exa%41mple.com",
    "a@[127.0.0.1]",
]
EMAIL_SHAPES = [
    "{address}",
    "[{address}]",
    "[a@example.org, {address}]",
    "{{addresses: [{address}], statuses: [FAILURE]}}",
]


def email_config(index: int, address: str) -> str:
    """A one-job file that sends to the address, in each of the shapes ``settings.email`` takes."""
    quoted = json.dumps(address, ensure_ascii=False)
    email = EMAIL_SHAPES[index % len(EMAIL_SHAPES)].format(address=quoted)
    job = "  main:\n    image: node:20\n    steps: [{test: npm test}]\n"
    return f"jobs:\n{job}    settings:\n      email: {email}\n"


# Named at collection; the files are generated when a test first asks (not when a run that
# deselects the oracle collects this module).
CASE_NAMES = (
    [path.stem for path in FIXTURES]
    + [f"generated-{i:03d}" for i in range(GENERATED_COUNT)]
    + [f"email-{i:02d}" for i in range(len(ADDRESSES))]
)


@functools.cache
def cases() -> dict[str, str]:
    """Every case's screwdriver.yaml by name: the fixtures, then the generated files."""
    texts = [path.read_text() for path in FIXTURES] + generated_configs(GENERATED_COUNT)
    texts += [email_config(index, address) for index, address in enumerate(ADDRESSES)]
    return dict(zip(CASE_NAMES, texts, strict=True))


pytestmark = [pytest.mark.oracle, pytest.mark.xdist_group("oracle")]


def fixture_templates(
    namespace: str, name: str, version_or_tag: str | None
) -> Mapping[str, Any] | None:
    """Serve the fixture templates the way our database-backed store serves real ones."""
    versions = [
        row
        for row in TEMPLATE_STORE["templates"]
        if row["namespace"] == namespace and row["name"] == name
    ]
    tags = {
        row["tag"]: row["version"]
        for row in TEMPLATE_STORE["tags"]
        if row["namespace"] == namespace and row["name"] == name
    }
    return resolve_template(versions, tags, version_or_tag)


@pytest.fixture(scope="session")
def oracle() -> Path:
    """Install the pinned reference packages once; skip when Node or npm is unavailable."""
    return install_npm_packages(ORACLE, what="the oracle packages")


def reference_results(oracle: Path, texts: list[str]) -> list[dict[str, Any]]:
    """Return what the reference parser makes of each text, from one node process."""
    cases = [{"yaml": text, **TEMPLATE_STORE} for text in texts]
    completed = subprocess.run(
        ["node", str(oracle / "parse.js")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def reference(oracle: Path) -> dict[str, dict[str, Any]]:
    """The reference's result for every case, computed once."""
    return dict(zip(cases(), reference_results(oracle, list(cases().values())), strict=True))


def normalised(result: dict[str, Any], errors_only: bool = False) -> dict[str, Any]:
    """Remove the differences we make on purpose or cannot avoid.

    1. YAML syntax errors: js-yaml and PyYAML word them differently and js-yaml appends a
       source snippet, so a YAMLException is compared by its kind only.
    2. The fallback job's echo command: we quote with shlex.quote, the reference with
       shell-escape; both are rebuilt here from the (normalised) error text.
    3. Cases marked errors-only (pipeline templates) compare only that both fail.
    """
    result = json.loads(json.dumps(result))
    if "errors" in result:
        result["errors"] = [
            "YAMLException" if error.startswith("YAMLException:") else error
            for error in result["errors"]
        ]
        if errors_only:
            result["errors"] = ["(an error)"]
        command = f"echo {shlex.quote(result['errors'][0])}; exit 1"
        result["jobs"]["main"][0]["commands"][0]["command"] = command
    return result


@pytest.mark.parametrize("case", CASE_NAMES)
def test_our_result_equals_the_reference_result(
    reference: dict[str, dict[str, Any]], case: str
) -> None:
    text = cases()[case]
    errors_only = text.startswith(ERRORS_ONLY_MARK)
    ours = parse_pipeline_yaml(text, templates=fixture_templates)

    assert normalised(ours, errors_only) == normalised(reference[case], errors_only)


def test_the_corpus_covers_valid_and_broken_files_and_enough_generated_ones(
    reference: dict[str, dict[str, Any]],
) -> None:
    fixture_results = [reference[path.stem] for path in FIXTURES]
    generated_results = [reference[f"generated-{index:03d}"] for index in range(GENERATED_COUNT)]

    assert len(FIXTURES) >= 150
    assert sum("errors" in result for result in fixture_results) >= 50
    assert sum("errors" not in result for result in fixture_results) >= 50
    assert GENERATED_COUNT >= 500
    # A generator whose files all fail would test only the error path.
    assert sum("errors" not in result for result in generated_results) >= 100


def test_the_email_cases_cover_accepted_and_refused_addresses(
    reference: dict[str, dict[str, Any]],
) -> None:
    results = [reference[f"email-{index:02d}"] for index in range(len(ADDRESSES))]

    assert sum("errors" in result for result in results) >= 15
    assert sum("errors" not in result for result in results) >= 15


def test_our_top_level_domains_are_the_ones_the_reference_checks(oracle: Path) -> None:
    script = (
        "const fs = require('fs');"
        "const path = require.resolve('@sideway/address/lib/tlds');"
        "const version = fs.readFileSync(path, 'utf8').match(/# (Version .*)/)[1];"
        "console.log(JSON.stringify({version, tlds: [...require(path)]}));"
    )
    completed = subprocess.run(
        ["node", "-e", script], cwd=oracle, capture_output=True, text=True, check=True, timeout=60
    )
    theirs = json.loads(completed.stdout)

    assert TLDS_FILE.read_text().splitlines()[0] == f"# {theirs['version']}"
    assert frozenset(theirs["tlds"]) == TOP_LEVEL_DOMAINS


PUBLISHED_USER = """
jobs:
  stable:
    requires: [~commit]
    template: ns/tpl@stable
  latest:
    requires: [stable]
    template: ns/tpl@latest
  major:
    requires: [stable]
    template: ns/tpl@1
  minor:
    requires: [stable]
    template: ns/tpl@1.0
    steps:
      - pregreet: echo before
  exact:
    requires: [stable]
    template: ns/tpl@2.0.0
  newest:
    requires: [stable]
    template: ns/tpl
  missing:
    requires: [stable]
    template: ns/tpl@1.7
"""


@pytest.mark.django_db
def test_versions_builds_published_resolve_as_the_reference_resolves_them(
    oracle: Path, owner: Any
) -> None:
    """Publish through the service, then parse with the database store and with the reference
    fed the same rows: tags, `latest`, version ranges and the newest version agree."""
    publisher = Publisher(pipeline=pipeline_from_yaml("jobs: {}", owner=owner), is_pr=False)
    for version, step in [("1.0", "a"), ("1.0", "b"), ("1.1", "c"), ("2", "d")]:
        sd_template = (
            f"namespace: ns\nname: tpl\nversion: '{version}'\ndescription: d\n"
            f"maintainer: a@b.example.com\nconfig:\n  image: alpine\n"
            f"  steps:\n    - greet: echo {step}\n"
        )
        publish_template(publisher=publisher, text=sd_template)
    tag_template(publisher=publisher, namespace="ns", name="tpl", tag="stable", version="1.0.1")
    tag_template(publisher=publisher, namespace="ns", name="tpl", tag="latest", version="2.0.0")
    store = {
        "templates": list(
            Template.objects.values("id", "namespace", "name", "version", "config", "images")
        ),
        "tags": list(TemplateTag.objects.values("namespace", "name", "tag", "version")),
    }
    # Every job but `missing` names a version that exists: take it out for the valid half.
    valid = PUBLISHED_USER.split("  missing:")[0]
    completed = subprocess.run(
        ["node", str(oracle / "parse.js")],
        input=json.dumps([{"yaml": text, **store} for text in (valid, PUBLISHED_USER)]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    reference_valid, reference_missing = json.loads(completed.stdout)

    ours_valid = parse_pipeline_yaml(valid, templates=database_templates)
    ours_missing = parse_pipeline_yaml(PUBLISHED_USER, templates=database_templates)

    assert "errors" not in ours_valid
    assert normalised(ours_valid) == normalised(reference_valid)
    assert normalised(ours_missing) == normalised(reference_missing)
    picked = {name: jobs[0]["commands"][-1]["command"] for name, jobs in ours_valid["jobs"].items()}
    assert picked == {
        "stable": "echo b",
        "latest": "echo d",
        "major": "echo c",
        "minor": "echo b",
        "exact": "echo d",
        "newest": "echo d",
    }


PIPELINE_TEMPLATES = [
    # (id, sd-template.yaml); each version is published as its exact version
    (
        7,
        """
namespace: acme
name: node
version: '1.0.0'
description: Test and publish a node package
maintainer: a@example.com
config:
  shared:
    image: node:20
    environment: {NODE_ENV: test}
    steps: [{setup: npm ci}]
  parameters:
    region: {value: us, description: Where to deploy}
    size: small
  annotations: {screwdriver.cd/restrictPR: fork}
  cache:
    pipeline: [node_modules]
    job: {test: [.cache]}
  subscribe:
    scmUrls: [{'git@github.com:acme/lib.git': [~commit]}]
  jobs:
    test:
      requires: [~pr, ~commit]
      annotations: {screwdriver.cd/mergeSharedSteps: true}
      steps: [{test: npm test}]
      sourcePaths: [src/]
    publish:
      requires: [test]
      image: node:18
      environment: {TAG: latest}
      settings: {email: [a@example.com]}
      steps: [{publish: npm publish}]
""",
    ),
    (
        8,
        """
namespace: acme
name: node
version: '1.1.0'
description: Test a node package
maintainer: a@example.com
config:
  jobs:
    main:
      image: node:22
      requires: [~commit]
      steps: [{test: npm test}]
""",
    ),
]
PIPELINE_TEMPLATE_TAGS = [
    {"namespace": "acme", "name": "node", "tag": "stable", "version": "1.0.0"}
]
PIPELINE_TEMPLATE_USERS = {
    "bare": "template: acme/node@1.0.0\n",
    "tag": "template: acme/node@stable\n",
    "prefix": "template: acme/node@1\n",
    "newest": "template: acme/node\n",
    "missing": "template: acme/node@2\n",
    "missing-tag": "template: acme/node@beta\n",
    "no-namespace": "template: node@1.0.0\n",
    "shared": """
template: acme/node@1.0.0
shared:
  image: node:22
  environment: {NODE_ENV: ci, EXTRA: x}
  settings: {email: [b@example.com]}
  sourcePaths: [lib/]
  requires: [~commit]
""",
    "shared-empty-settings": "template: acme/node@stable\nshared: {settings: {}}\n",
    "shared-steps-refused": "template: acme/node@1.0.0\nshared: {steps: [{x: echo}]}\n",
    "job-overrides": """
template: acme/node@1.0.0
jobs:
  test:
    image: node:22
    requires: [~commit]
    environment: {EXTRA: x}
    annotations: {screwdriver.cd/timeout: 30}
    sourcePaths: [src/, lib/]
    settings: {email: [b@example.com]}
  publish:
    settings: {}
""",
    "job-added": """
template: acme/node@1.0.0
jobs:
  deploy:
    image: alpine
    requires: [publish]
    steps: [{deploy: ./deploy.sh}]
""",
    "job-steps-refused": """
template: acme/node@1.0.0
jobs:
  test:
    steps: [{test: echo mine}]
""",
    "job-secrets-refused": "template: acme/node@1.0.0\njobs:\n  publish: {secrets: [NPM]}\n",
    "pipeline-level": """
template: acme/node@1.0.0
annotations: {screwdriver.cd/restrictPR: all, mine: x}
parameters:
  region: eu
  extra: {value: x, description: mine}
cache:
  pipeline: [dist]
  job: {publish: [out]}
subscribe:
  scmUrls: [{'git@github.com:acme/lib.git': [~pr]}, {'git@github.com:acme/other.git': [~commit]}]
childPipelines:
  scmUrls: ['git@github.com:acme/child.git']
""",
    "stages-dropped": """
template: acme/node@1.1.0
stages:
  ci: {jobs: [main]}
""",
    "user-env-wins": """
template: acme/node@1.1.0
shared:
  environment: {SD_PIPELINE_TEMPLATE_VERSION: mine}
""",
}


def _reference_run(oracle: Path, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    completed = subprocess.run(
        ["node", str(oracle / "parse.js")],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


@functools.cache
def _our_pipeline_template_rows() -> list[dict[str, Any]]:
    rows = []
    for row_id, text in PIPELINE_TEMPLATES:
        result = validate_pipeline_template(text)
        assert result["errors"] == []
        template = result["template"]
        rows.append({"id": row_id, **{k: template[k] for k in ("namespace", "name", "version")}})
        rows[-1]["config"] = template["config"]
    return rows


def our_pipeline_templates(
    namespace: str, name: str, version_or_tag: str | None
) -> Mapping[str, Any] | None:
    """Serve the rows our publishing made, with the job-template picking rules."""
    versions = [
        r for r in _our_pipeline_template_rows() if (r["namespace"], r["name"]) == (namespace, name)
    ]
    tags = {
        t["tag"]: t["version"]
        for t in PIPELINE_TEMPLATE_TAGS
        if (t["namespace"], t["name"]) == (namespace, name)
    }
    return resolve_template(versions, tags, version_or_tag)


def test_a_published_pipeline_template_is_stored_as_the_reference_stores_it(oracle: Path) -> None:
    theirs = _reference_run(
        oracle, [{"pipelineTemplateYaml": text} for _, text in PIPELINE_TEMPLATES]
    )
    for (_, text), reference_template in zip(PIPELINE_TEMPLATES, theirs, strict=True):
        ours = validate_pipeline_template(text)["template"]
        assert ours == reference_template


@pytest.fixture(scope="session")
def pipeline_template_reference(oracle: Path) -> dict[str, dict[str, Any]]:
    """The reference's result for every file using a pipeline template, from one node run."""
    items = [
        {
            "yaml": text,
            "pipelineTemplates": _our_pipeline_template_rows(),
            "pipelineTemplateTags": PIPELINE_TEMPLATE_TAGS,
        }
        for text in PIPELINE_TEMPLATE_USERS.values()
    ]
    return dict(zip(PIPELINE_TEMPLATE_USERS, _reference_run(oracle, items), strict=True))


@pytest.mark.parametrize("case", list(PIPELINE_TEMPLATE_USERS))
def test_a_file_using_a_pipeline_template_parses_as_the_reference_parses_it(
    pipeline_template_reference: dict[str, dict[str, Any]], case: str
) -> None:
    text = PIPELINE_TEMPLATE_USERS[case]

    ours = parse_pipeline_yaml(text, pipeline_templates=our_pipeline_templates)

    assert normalised(ours) == normalised(pipeline_template_reference[case])
    refused = case.endswith("refused") or case.startswith("missing") or case == "no-namespace"
    assert ("errors" in ours) is refused


@pytest.mark.django_db
def test_pipeline_templates_builds_published_merge_as_the_reference_merges_them(
    oracle: Path, owner: Any
) -> None:
    """Publish through the service, then parse with the database store and with the reference
    fed the same rows: versions, tags and the merge agree, refused overrides included."""
    publisher = Publisher(pipeline=pipeline_from_yaml("jobs: {}", owner=owner), is_pr=False)
    for version in ["1.0", "1.0", "2"]:
        publish_pipeline_template(publisher=publisher, text=PIPELINE_TEMPLATES[0][1])
        publish_pipeline_template(
            publisher=publisher, text=PIPELINE_TEMPLATES[1][1].replace("1.1.0", version)
        )
    tag_pipeline_template(
        publisher=publisher, namespace="acme", name="node", tag="stable", version="1.0.1"
    )
    rows = [
        {**row, "namespace": "acme", "name": "node"}
        for row in PipelineTemplateVersion.objects.values("id", "version", "config")
    ]
    tags = [
        {"namespace": "acme", "name": "node", "tag": tag, "version": version}
        for tag, version in PipelineTemplateTag.objects.values_list("tag", "version")
    ]
    texts = [
        text.replace("@1.0.0", "@1").replace("@1.1.0", "@stable")
        for text in PIPELINE_TEMPLATE_USERS.values()
    ]
    theirs = _reference_run(
        oracle,
        [{"yaml": t, "pipelineTemplates": rows, "pipelineTemplateTags": tags} for t in texts],
    )

    ours = [parse_pipeline_yaml(t, pipeline_templates=database_pipeline_templates) for t in texts]

    assert [normalised(result) for result in ours] == [normalised(result) for result in theirs]
    assert sum("errors" not in result for result in ours) >= 8
