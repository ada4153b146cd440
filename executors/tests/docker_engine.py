"""The Docker engine the container tests talk to, and the local image they run."""

from __future__ import annotations

from typing import Any

import pytest

IMAGE = "sd-test-busybox:1"


def docker_engine() -> Any:
    """A client of the engine DOCKER_HOST or the local socket names; skip when none answers."""
    try:
        import docker

        engine = docker.from_env(timeout=10)
        engine.ping()
    except Exception as exc:
        pytest.skip(
            "No Docker engine answers (DOCKER_HOST or the local socket): install docker.io "
            f"and start dockerd. {exc}"
        )
    return engine


def containers_of(instance: str) -> list[Any]:
    """The containers a server with this instance label started, running or not."""
    # A container the build's cleanup removes between the listing and its inspection is gone,
    # not an error.
    return list(
        docker_engine().containers.list(
            all=True,
            filters={"label": [f"screwdriver.cd/instance={instance}"]},
            ignore_removed=True,
        )
    )
