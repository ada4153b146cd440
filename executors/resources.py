"""What `screwdriver.cd/cpu` and `screwdriver.cd/ram` ask for, read as Screwdriver reads them.

`MICRO`, `LOW` (the default), `HIGH` and `TURBO` are 0.5, 2, 6 and 12 CPUs and 1, 2, 12 and
16 GB of memory; a whole number asks for that many CPUs or GB, capped at 12 CPUs and 16 GB.
The `beta.screwdriver.cd/` prefix still works, as it does there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CPU_CORES = {"MICRO": 0.5, "LOW": 2.0, "HIGH": 6.0, "TURBO": 12.0}
RAM_GB = {"MICRO": 1.0, "LOW": 2.0, "HIGH": 12.0, "TURBO": 16.0}
MAX_CPU_CORES = 12.0
MAX_RAM_GB = 16.0
_PREFIXES = ("screwdriver.cd/", "beta.screwdriver.cd/")


def annotation(annotations: Mapping[str, object], name: str) -> object:
    """The value of `screwdriver.cd/NAME` (or its beta spelling), or None."""
    for prefix in _PREFIXES:
        value = annotations.get(prefix + name)
        if value is not None:
            return value
    return None


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _pick(value: object, table: dict[str, float], most: float) -> float:
    number = _whole_number(value)
    if number is not None and number > 0:
        return min(float(number), most)
    return table.get(str(value).upper() if value is not None else "", table["LOW"])


@dataclass(frozen=True)
class Resources:
    """CPUs and memory one build may use."""

    cpu_cores: float
    ram_gb: float

    @property
    def memory_bytes(self) -> int:
        """The memory limit in bytes (GB read as GiB, as Kubernetes' `Gi`)."""
        return int(self.ram_gb * 1024**3)

    @property
    def k8s_cpu(self) -> str:
        """The CPU quantity in millicores, as Screwdriver writes it."""
        return f"{round(self.cpu_cores * 1000)}m"

    @property
    def k8s_memory(self) -> str:
        """The memory quantity in Gi (Mi when it is not whole)."""
        if self.ram_gb == int(self.ram_gb):
            return f"{int(self.ram_gb)}Gi"
        return f"{round(self.ram_gb * 1024)}Mi"


def resources_for(annotations: Mapping[str, object]) -> Resources:
    """The resources a job's annotations ask for."""
    return Resources(
        cpu_cores=_pick(annotation(annotations, "cpu"), CPU_CORES, MAX_CPU_CORES),
        ram_gb=_pick(annotation(annotations, "ram"), RAM_GB, MAX_RAM_GB),
    )


# Screwdriver's default teardown grace for a stopped build; operators bound it (their 120 s).
DEFAULT_GRACE_SECONDS = 60


def termination_grace_seconds(annotations: Mapping[str, object], *, most: int) -> int:
    """The seconds a stopped build's teardown gets (`screwdriver.cd/terminationGracePeriodSeconds`),
    60 unless it names a whole number, at most `most`."""
    number = _whole_number(annotation(annotations, "terminationGracePeriodSeconds"))
    chosen = number if number is not None and number > 0 else DEFAULT_GRACE_SECONDS
    return max(1, min(chosen, most))


def docker_enabled(annotations: Mapping[str, object]) -> bool:
    """Whether the job asks for Docker-in-Docker (`screwdriver.cd/dockerEnabled: true`)."""
    value = annotation(annotations, "dockerEnabled")
    return value is True or str(value).strip().lower() == "true"


def disk_class(annotations: Mapping[str, object]) -> str:
    """`HIGH` or `LOW` (the default), as `screwdriver.cd/disk` asks."""
    value = annotation(annotations, "disk")
    return "HIGH" if str(value).strip().upper() == "HIGH" else "LOW"
