"""screwdriver.cd/cpu and screwdriver.cd/ram, read as Screwdriver's k8s executor reads them."""

from __future__ import annotations

import pytest

from executors.resources import docker_enabled, resources_for, termination_grace_seconds


@pytest.mark.parametrize(
    ("cpu", "cores"),
    [
        (None, 2.0),
        ("MICRO", 0.5),
        ("LOW", 2.0),
        ("HIGH", 6.0),
        ("TURBO", 12.0),
        (4, 4.0),
        (64, 12.0),
        ("nonsense", 2.0),
    ],
)
def test_cpu_levels_and_whole_numbers_map_to_cores(cpu: object, cores: float) -> None:
    annotations = {} if cpu is None else {"screwdriver.cd/cpu": cpu}
    assert resources_for(annotations).cpu_cores == cores


@pytest.mark.parametrize(
    ("ram", "gb"),
    [
        (None, 2.0),
        ("MICRO", 1.0),
        ("LOW", 2.0),
        ("HIGH", 12.0),
        ("TURBO", 16.0),
        (3, 3.0),
        (100, 16.0),
    ],
)
def test_ram_levels_and_whole_numbers_map_to_gigabytes(ram: object, gb: float) -> None:
    annotations = {} if ram is None else {"screwdriver.cd/ram": ram}
    assert resources_for(annotations).ram_gb == gb


def test_the_beta_prefix_still_works_and_quantities_read_as_kubernetes_writes_them() -> None:
    wanted = resources_for({"beta.screwdriver.cd/cpu": "MICRO", "beta.screwdriver.cd/ram": "HIGH"})
    assert (wanted.k8s_cpu, wanted.k8s_memory) == ("500m", "12Gi")
    assert wanted.memory_bytes == 12 * 1024**3


@pytest.mark.parametrize(
    ("grace", "seconds"),
    [(None, 60), (30, 30), ("45", 45), (500, 120), (0, 60), ("soon", 60), (True, 60)],
)
def test_the_teardown_grace_is_sixty_seconds_unless_asked_and_at_most_the_operators(
    grace: object, seconds: int
) -> None:
    annotations = {} if grace is None else {"screwdriver.cd/terminationGracePeriodSeconds": grace}
    assert termination_grace_seconds(annotations, most=120) == seconds


@pytest.mark.parametrize(
    ("value", "wanted"),
    [(None, False), (True, True), ("true", True), (False, False), ("false", False)],
)
def test_docker_in_docker_is_asked_for_by_true(value: object, wanted: bool) -> None:
    annotations = {} if value is None else {"beta.screwdriver.cd/dockerEnabled": value}
    assert docker_enabled(annotations) is wanted
