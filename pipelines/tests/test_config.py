"""Behaviour of the screwdriver.yaml parser (pipelines.config)."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest

from pipelines.config import parse_pipeline_yaml
from pipelines.config.loader import MAX_BYTES, MAX_DEPTH


def parse_ok(text: str) -> dict[str, Any]:
    """Parse text and fail the test if the parser reported errors."""
    result = parse_pipeline_yaml(text)
    assert "errors" not in result, result.get("errors")
    return result


def only_job(result: dict[str, Any], name: str = "main") -> dict[str, Any]:
    """Return the single permutation of a job."""
    (permutation,) = result["jobs"][name]
    return permutation


def test_it_expands_all_three_step_forms_into_named_commands() -> None:
    result = parse_ok(
        "jobs:\n  main:\n    image: alpine\n    steps:\n"
        "      - echo one\n      - two: echo two\n      - three:\n          command: echo three\n"
    )

    assert only_job(result)["commands"] == [
        {"name": "step-1", "command": "echo one"},
        {"name": "two", "command": "echo two"},
        {"name": "three", "command": "echo three"},
    ]


def test_a_job_permutation_has_the_reference_defaults() -> None:
    result = parse_ok("jobs:\n  main:\n    image: alpine\n    steps: [make]\n")

    assert only_job(result) == {
        "annotations": {},
        "commands": [{"name": "step-1", "command": "make"}],
        "environment": {},
        "image": "alpine",
        "secrets": [],
        "settings": {},
    }
    assert result["parameters"] == {} and result["subscribe"] == {}
    assert result["workflowGraph"] == {
        "nodes": [{"name": "~pr"}, {"name": "~commit"}, {"name": "main"}],
        "edges": [],
    }


def test_teardown_steps_must_come_last() -> None:
    result = parse_pipeline_yaml(
        "jobs:\n  main:\n    image: alpine\n    steps:\n      - teardown-x: a\n      - b: c\n"
    )

    assert result["errors"] == ["Error: User teardown steps need to be at the end"]


def test_a_job_overrides_shared_maps_key_by_key_and_replaces_steps() -> None:
    result = parse_ok(
        "shared:\n  image: node:20\n  environment: {A: shared, B: shared}\n  secrets: [S1]\n"
        "  annotations: {screwdriver.cd/timeout: 30}\n  steps: [shared-step]\n"
        "jobs:\n  main:\n    environment: {B: own}\n    secrets: [S2, S1]\n"
        "    steps: [own-step]\n"
    )

    job = only_job(result)
    assert job["image"] == "node:20"
    assert job["environment"] == {"A": "shared", "B": "own"}
    assert job["secrets"] == ["S1", "S2"]
    assert job["annotations"] == {"screwdriver.cd/timeout": 30}
    assert [command["command"] for command in job["commands"]] == ["own-step"]


def test_plain_requires_make_join_edges_and_tilde_requires_make_or_edges() -> None:
    result = parse_ok(
        "shared: {image: alpine, steps: [x]}\njobs:\n  a: {requires: ~commit}\n"
        "  b: {requires: [a]}\n  c: {requires: [a, b]}\n  d: {requires: [~a, ~b]}\n"
    )

    assert result["workflowGraph"]["edges"] == [
        {"src": "~commit", "dest": "a"},
        {"src": "a", "dest": "b", "join": True},
        {"src": "a", "dest": "c", "join": True},
        {"src": "b", "dest": "c", "join": True},
        {"src": "a", "dest": "d"},
        {"src": "b", "dest": "d"},
    ]


def test_it_reports_a_cycle_between_jobs() -> None:
    result = parse_pipeline_yaml(
        "shared: {image: alpine, steps: [x]}\njobs:\n  a: {requires: [b]}\n  b: {requires: [~a]}\n"
    )

    assert result["errors"] == ["Error: Jobs: should not have circular dependency in jobs"]


def test_environment_values_become_strings_as_json_and_yes_stays_yes() -> None:
    result = parse_ok(
        "jobs:\n  main:\n    image: alpine\n    steps: [env]\n"
        "    environment: {N: 1, F: 1.0, B: true, Y: yes, L: [1, a], Z: null, O: 0755}\n"
    )

    assert only_job(result)["environment"] == {
        "N": "1",
        "F": "1",
        "B": "true",
        "Y": "yes",
        "L": '[1,"a"]',
        "Z": "null",
        "O": "755",
    }


def test_top_level_annotations_and_parameters_pass_through() -> None:
    result = parse_ok(
        "annotations: {screwdriver.cd/restrictPR: fork}\nparameters: {region: us}\n"
        "jobs:\n  main: {image: alpine, steps: [x], annotations: {screwdriver.cd/timeout: 5}}\n"
    )

    assert result["annotations"] == {"screwdriver.cd/restrictPR": "fork"}
    assert result["parameters"] == {"region": "us"}
    assert only_job(result)["annotations"] == {"screwdriver.cd/timeout": 5}


def test_unknown_screwdriver_annotations_give_warnings_not_errors() -> None:
    result = parse_ok("jobs:\n  main: {image: a, steps: [x], annotations: {screwdriver.cd/x: 1}}\n")

    assert result["warnMessages"] == [
        "screwdriver.cd/x is not an annotation that is reserved for Job-Level"
    ]


def test_validation_errors_read_like_the_reference() -> None:
    result = parse_pipeline_yaml("jobs:\n  main: {image: alpine, steps: [], secrets: [low]}\n")

    assert result["errors"] == [
        'ValidationError: "jobs.main.secrets[0]" with value "low" fails to match the required '
        'pattern: /^[A-Z_][A-Z0-9_]*$/. "jobs.main.steps" must contain at least 1 items'
    ]


def test_an_error_gives_the_fallback_pipeline_with_one_failing_job() -> None:
    result = parse_pipeline_yaml("")

    error = result["errors"][0]
    assert error.startswith("Error: screwdriver.yaml does not exist.")
    assert result["jobs"] == {
        "main": [
            {
                "image": "node:18",
                "commands": [
                    {"name": "config-parse-error", "command": f"echo {shlex.quote(error)}; exit 1"}
                ],
                "secrets": [],
                "environment": {"SD_SKIP_REPOSITORY_CLONE": "true"},
            }
        ]
    }
    assert {"src": "~pr:/.*/", "dest": "main"} in result["workflowGraph"]["edges"]


def test_nothing_in_an_error_message_can_run_as_shell() -> None:
    result = parse_pipeline_yaml("jobs:\n  main:\n    image: \"x'; touch /tmp/pwned; '$(id)\"\n")

    command = result["jobs"]["main"][0]["commands"][0]["command"]
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert output.stdout.strip() == result["errors"][0]
    assert output.returncode == 1


def test_it_refuses_files_over_the_size_limit() -> None:
    result = parse_pipeline_yaml("# " + "x" * MAX_BYTES + "\njobs: {}\n")

    assert "larger than 512 KiB" in result["errors"][0]


def test_it_refuses_an_alias_expansion_bomb() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    result = parse_pipeline_yaml("\n".join(lines) + "\n")

    assert result["errors"][0].startswith("YAMLException: aliases expand to more than")


def test_it_refuses_an_alias_that_contains_itself() -> None:
    result = parse_pipeline_yaml("a: &a [*a]\n")

    assert "alias refers to a node that contains it" in result["errors"][0]


def test_it_refuses_absurd_nesting() -> None:
    result = parse_pipeline_yaml("[" * 5000 + "]" * 5000)

    assert result["errors"][0].startswith(f"YAMLException: nesting exceeded maxDepth ({MAX_DEPTH})")


def test_it_refuses_duplicate_keys_like_js_yaml() -> None:
    result = parse_pipeline_yaml("jobs: {}\njobs: {}\n")

    assert result["errors"] == ["YAMLException: duplicated mapping key (2:1)"]


@pytest.mark.parametrize("text", ["!!python/object:os.system {}\n", "a: !!set {x}\n", "a: !x 1\n"])
def test_it_refuses_tags_outside_the_safe_schema(text: str) -> None:
    assert parse_pipeline_yaml(text)["errors"][0].startswith("YAMLException:")


PIPELINE_TEMPLATE = {
    "id": 12,
    "namespace": "acme",
    "name": "pipe",
    "version": "1.0.2",
    "config": {
        "parameters": {},
        "jobs": {
            "main": {
                "image": "alpine",
                "requires": ["~commit"],
                "steps": [{"test": "make test"}],
                "environment": {"A": "template"},
                "settings": {},
                "annotations": {},
                "secrets": [],
                "sourcePaths": [],
            }
        },
    },
}


def pipeline_templates(namespace: str, name: str, version_or_tag: str | None) -> Any:
    return PIPELINE_TEMPLATE if (namespace, name, version_or_tag) == ("acme", "pipe", "1") else None


def test_it_says_which_pipeline_template_does_not_exist() -> None:
    result = parse_pipeline_yaml(
        "template: acme/pipeline@1\njobs:\n  main: {requires: [~commit]}\n",
        pipeline_templates=pipeline_templates,
    )

    assert result["errors"] == ["Error: Pipeline template acme/pipeline@1 does not exist"]


def test_a_pipeline_template_gives_its_jobs_and_names_itself_in_their_environment() -> None:
    result = parse_pipeline_yaml(
        "template: acme/pipe@1\nshared: {environment: {B: mine}}\n"
        "jobs:\n  main: {image: node:22, environment: {A: mine}}\n",
        pipeline_templates=pipeline_templates,
    )

    [main] = result["jobs"]["main"]
    assert main["image"] == "node:22"
    assert main["commands"] == [{"name": "test", "command": "make test"}]
    assert main["environment"] == {
        "SD_PIPELINE_TEMPLATE_FULLNAME": "acme/pipe",
        "SD_PIPELINE_TEMPLATE_NAME": "pipe",
        "SD_PIPELINE_TEMPLATE_NAMESPACE": "acme",
        "SD_PIPELINE_TEMPLATE_VERSION": "1.0.2",
        "B": "mine",
        "A": "mine",
    }
    assert result["templateVersionId"] == 12


def test_a_file_cannot_replace_the_steps_of_a_pipeline_templates_job() -> None:
    result = parse_pipeline_yaml(
        "template: acme/pipe@1\njobs:\n  main: {steps: [{test: echo skipped}]}\n",
        pipeline_templates=pipeline_templates,
    )

    assert result["errors"] == [
        'Error: Job "main" has unsupported fields in user yaml. '
        "Can only set settings,requires,image,environment,annotations,sourcePaths."
    ]


def test_a_job_template_is_merged_with_pre_and_post_steps_and_image_aliases() -> None:
    template = {
        "id": 7,
        "namespace": "acme",
        "name": "deploy",
        "version": "1.2.3",
        "config": {"image": "stable", "steps": [{"deploy": "./deploy.sh"}]},
        "images": {"stable": "acme/deployer:1"},
    }
    asked: list[tuple[str, str, str | None]] = []

    def templates(namespace: str, name: str, version_or_tag: str | None) -> dict[str, Any]:
        asked.append((namespace, name, version_or_tag))
        return template

    result = parse_pipeline_yaml(
        "jobs:\n  main:\n    template: acme/deploy@1\n    steps:\n"
        "      - predeploy: echo before\n      - postdeploy: echo after\n",
        templates=templates,
    )

    job = only_job(result)
    assert asked == [("acme", "deploy", "1")]
    assert [command["name"] for command in job["commands"]] == [
        "predeploy",
        "deploy",
        "postdeploy",
    ]
    assert job["image"] == "acme/deployer:1"
    assert job["templateId"] == 7
    assert job["environment"]["SD_TEMPLATE_FULLNAME"] == "acme/deploy"


def test_a_missing_template_is_an_error_that_names_it() -> None:
    result = parse_pipeline_yaml("jobs:\n  main:\n    template: acme/ghost@1\n")

    assert result["errors"] == ["Error: Template acme/ghost@1 does not exist"]


def test_stages_get_virtual_setup_and_teardown_jobs() -> None:
    result = parse_ok(
        "stages:\n  prod:\n    jobs: [deploy]\njobs:\n  deploy: {image: alpine, steps: [x]}\n"
    )

    assert list(result["jobs"]) == ["deploy", "stage@prod:setup", "stage@prod:teardown"]
    assert only_job(result, "deploy")["requires"] == ["~stage@prod:setup"]
    assert only_job(result, "stage@prod:teardown")["requires"] == ["deploy"]
    assert result["stages"] == {"prod": {"jobs": ["deploy"]}}


@pytest.mark.parametrize("text", ["\x00", "\ufeff", "- - -", "{", "jobs: {main: [1]}", "?"])
def test_it_never_raises_for_garbage(text: str) -> None:
    result = parse_pipeline_yaml(text)

    assert set(result) >= {"annotations", "jobs", "workflowGraph"}


def test_a_lone_surrogate_escape_becomes_a_config_error_no_datastore_would_refuse() -> None:
    result = parse_pipeline_yaml(
        'jobs:\n  main:\n    image: "\\ud800"\n    steps:\n      - a: echo\n'
    )
    assert result["errors"] == [
        "Error: screwdriver.yaml holds a lone UTF-16 surrogate escape (like \\ud800): "
        "use valid Unicode"
    ]
    result["jobs"]["main"][0]["commands"][0]["command"].encode("utf-8")


EMAIL_JOB = (
    "jobs:\n  main:\n    image: a\n    steps: [{{t: x}}]\n    settings: {{email: {address}}}\n"
)


@pytest.mark.parametrize(
    "address", ["a@example.dev", "a@example.museum", "A@EXAMPLE.XN--P1AI", "a@пример.рф"]
)
def test_it_accepts_an_address_whose_top_level_domain_iana_lists(address: str) -> None:
    settings = only_job(parse_ok(EMAIL_JOB.format(address=address)))["settings"]

    assert settings == {"email": address}


@pytest.mark.parametrize(
    "address", ["x@y.z", "a@example.test", "a@example.com.", "a@example.123", "a@localhost"]
)
def test_it_refuses_an_address_whose_top_level_domain_is_not_a_real_one(address: str) -> None:
    result = parse_pipeline_yaml(EMAIL_JOB.format(address=address))

    assert result["errors"] == ['Error: main "email" must be a valid email']
