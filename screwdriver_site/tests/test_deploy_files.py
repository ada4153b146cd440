"""The deployment examples (deploy/compose.yaml, deploy/kubernetes) stay true to the code.

No image can be pulled here, so each file is read as data: every command a service runs is
one of our management commands with options it accepts, every variable it sets is a setting
.env.example documents, and a worker's settings pass the checks `sd_worker` makes at start.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from screwdriver_site.topology import check_worker

ROOT = Path(__file__).resolve().parents[2]
OUR_IMAGE_ENV_EXTRA = {"PYTHONUNBUFFERED"}


def documented_settings() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def resolve(value: object) -> str:
    """A compose value with `${NAME:-default}` read as its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def manage_commands(command: list[str] | str) -> list[list[str]]:
    """Each `manage.py NAME ARGS...` the command line runs, as [NAME, *ARGS]."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    runs: list[list[str]] = []
    current: list[str] | None = None
    for word in words:
        if word == "manage.py":
            current = []
            runs.append(current)
        elif word in {"&&", ";", "||"}:
            current = None
        elif current is not None and word != "exec":
            current.append(word)
    return runs


def assert_runs_our_commands(command: list[str] | str) -> list[str]:
    runs = manage_commands(command)
    assert runs, f"{command!r} runs no manage.py command"
    known = get_commands()
    for name, *args in runs:
        assert name in known, f"manage.py {name} does not exist"
        parser = load_command_class(known[name], name).create_parser("manage.py", name)
        parser.parse_args(args)  # exits (SystemExit) on an option the command lacks
    return [run[0] for run in runs]


def check_environment(env: dict[str, Any]) -> None:
    unknown = set(env) - documented_settings() - OUR_IMAGE_ENV_EXTRA
    assert not unknown, f"not documented in .env.example: {sorted(unknown)}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    return loaded


def test_compose_has_every_role_of_several_hosts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"api", "worker", "postgres", "redis", "minio"} <= set(services)
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a missing service {needed}"
    assert "replicas" in services["worker"]["deploy"]


def test_compose_runs_the_api_without_a_worker_and_the_workers_apart(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert assert_runs_our_commands(services["api"]["command"]) == ["migrate", "sd_serve"]
    assert "--no-worker" in " ".join(services["api"]["command"])
    assert assert_runs_our_commands(services["worker"]["command"]) == ["sd_worker"]


@pytest.mark.parametrize("role", ["api", "worker"])
def test_compose_sets_only_documented_settings(compose: dict[str, Any], role: str) -> None:
    env = compose["services"][role]["environment"]
    check_environment(env)
    assert env["SD_REDIS_URL"] and env["DATABASE_URL"].startswith("${DATABASE_URL:-postgres://")


def test_a_compose_worker_passes_the_checks_of_a_worker_on_its_own_host(
    compose: dict[str, Any],
) -> None:
    env = {k: resolve(v) for k, v in compose["services"]["worker"]["environment"].items()}
    assert env["SD_WORKER_REMOTE"] == "true"
    check = check_worker(
        remote=True,
        api_url=env["SD_API_URL"],
        database_engine="django.db.backends.postgresql",
        secret_key_set=bool(env["SD_SECRET_KEY"]),
        redis_url=env["SD_REDIS_URL"],
    )
    assert check.errors == [] and check.warnings == []


def kubernetes_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "deploy/kubernetes").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_kubernetes_runs_an_api_and_workers_with_redis_and_documented_settings() -> None:
    docs = kubernetes_documents()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"]["SD_REDIS_URL"].startswith("redis://")
    check_environment(secret["stringData"])
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    commands = {}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        commands[name] = assert_runs_our_commands(container["command"])
        check_environment({e["name"]: e.get("value") for e in container["env"]})
    assert commands == {"screwdriver": ["migrate", "sd_serve"], "screwdriver-worker": ["sd_worker"]}
    worker = deployments["screwdriver-worker"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["SD_WORKER_REMOTE"] == "true"
    assert not check_worker(
        remote=True,
        api_url=env["SD_API_URL"],
        database_engine="django.db.backends.postgresql",
        secret_key_set=True,
        redis_url=secret["stringData"]["SD_REDIS_URL"],
    ).errors
