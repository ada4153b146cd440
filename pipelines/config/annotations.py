"""Reserved ``screwdriver.cd/`` annotations and the warnings for unknown ones."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

PREFIX = "screwdriver.cd/"
RESERVED_JOB_ANNOTATIONS = frozenset(
    PREFIX + name
    for name in (
        "buildCluster",
        "buildPeriodically",
        "collapseBuilds",
        "cpu",
        "disk",
        "diskSpeed",
        "executor",
        "ram",
        "repoManifest",
        "timeout",
        "dockerEnabled",
        "dockerCpu",
        "dockerRam",
        "rootlessBuildkitEnabled",
        "buildkitCpu",
        "buildkitRam",
        "coverageScope",
        "terminationGracePeriodSeconds",
        "displayName",
        "mergeSharedSteps",
        "manualStartEnabled",
        "blockedBySameJob",
        "blockedBySameJobWaitTime",
        "jobDisabledByDefault",
        "virtualJob",
        "sdAdminBuildClusterOverride",
        # Ours, not Screwdriver's: retries of a build lost to the infrastructure.
        "retries",
    )
)
RETRIES = PREFIX + "retries"
MANUAL_START_ENABLED = PREFIX + "manualStartEnabled"
MAX_RETRIES = 5
RESERVED_PIPELINE_ANNOTATIONS = frozenset(
    PREFIX + name
    for name in ("buildCluster", "restrictPR", "chainPR", "pipelineDescription", "useDeployKey")
)


def starts_by_hand(job_config: dict[str, Any]) -> bool:
    """Whether people may start the job (`screwdriver.cd/manualStartEnabled`, true unless
    false); its triggers start it either way."""
    value = (job_config.get("annotations") or {}).get(MANUAL_START_ENABLED)
    return value is not False and str(value).strip().lower() != "false"


def annotation_warnings(annotations: dict[str, Any], jobs: dict[str, Any]) -> list[str]:
    """Warn about unknown screwdriver.cd/ annotations; refuse sdAdmin ones on jobs."""
    warnings = [
        f"{key} is not an annotation that is reserved for Pipeline-Level"
        for key in annotations
        if key.startswith(PREFIX) and key not in RESERVED_PIPELINE_ANNOTATIONS
    ]
    for job in jobs.values():
        job_annotations = job.get("annotations") or {}
        if any(key.startswith(PREFIX + "sdAdmin") for key in job_annotations):
            raise ConfigError(
                "Annotations starting with screwdriver.cd/sdAdmin are reserved for system use only"
            )
        retries = job_annotations.get(RETRIES)
        if retries is not None and (
            isinstance(retries, bool)
            or not isinstance(retries, int | str)
            or not str(retries).isdigit()
            or int(retries) > MAX_RETRIES
        ):
            raise ConfigError(
                f"{RETRIES} must be a whole number from 0 to {MAX_RETRIES}, not {retries!r}"
            )
        warnings.extend(
            f"{key} is not an annotation that is reserved for Job-Level"
            for key in job_annotations
            if key.startswith(PREFIX) and key not in RESERVED_JOB_ANNOTATIONS
        )
    return warnings
