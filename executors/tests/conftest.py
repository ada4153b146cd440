"""Fixtures of the executors tests: the Docker image and a stack whose containers are its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Stack
from executors.tests.docker_engine import IMAGE, containers_of, docker_engine
from tools.busybox_image import BUSYBOX, build_busybox_image


@pytest.fixture(scope="session")
def busybox_image() -> str:
    """`FROM scratch` plus a static busybox: /bin/sh and no Python, no git, never pulled."""
    engine = docker_engine()
    if not BUSYBOX.exists():
        pytest.skip("No /bin/busybox to build the test image from: install busybox-static.")
    build_busybox_image(engine, IMAGE, env="PATH=/bin IMAGE_VAR=from-the-image")
    try:
        engine.containers.run(IMAGE, ["/bin/sh", "-c", "true"], remove=True)
    except Exception as exc:
        pytest.skip(f"/bin/busybox does not run in an empty image (not static?): {exc}")
    return IMAGE


@pytest.fixture
def docker_stack(stack: Stack, settings: Any, busybox_image: str) -> Iterator[Stack]:
    """The stack, with an instance label of its own so only this test's containers are touched.

    Its worker runs Docker builds only where the module's `stack_env` allows the executor.
    """
    instance = f"sdtest-{uuid.uuid4().hex[:10]}"
    settings.SD_INSTANCE = instance
    settings.SD_DOCKER_PULL = "missing"
    stack.stop_worker()
    stack.env["SD_INSTANCE"] = instance
    stack.start_worker()
    yield stack
    for container in containers_of(instance):
        try:
            container.remove(force=True)
        except Exception as exc:
            # The build's own cleanup may have removed it (404) or be removing it (409);
            # anything else is a real failure.
            if getattr(getattr(exc, "response", None), "status_code", None) not in {404, 409}:
                raise
