"""The secrets a build may see, and the masker that hides their values in what it reports."""

from __future__ import annotations

import time
from collections import OrderedDict

from django.db.models import QuerySet

from builds.models import Build
from executors.launcher.masking import Masker
from pipelines.encryption import decrypt
from pipelines.models import Pipeline, Secret
from scm.clients import scm_of_context

# Log batches come several a second: the masker of a build is reused this long.
MASKER_TTL_SECONDS = 10.0
_MASKERS_KEPT = 256
_maskers: OrderedDict[tuple[int, str], tuple[float, Masker]] = OrderedDict()


def allowed_secrets(build: Build) -> QuerySet[Secret]:
    """The secrets the build's job lists, less those a pull request may not see.

    A child pipeline (`childPipelines`) inherits its parent's secrets, as in Screwdriver: a
    name the child has a secret of its own for is the child's, any other the parent's. The
    pull request rule is then the chosen row's own `allowInPR` (the child's row wins even when
    it keeps the value from pull requests and the parent's would not).
    """
    wanted = [str(name) for name in build.job_config().get("secrets") or []]
    pipeline = build.job.pipeline
    rows = Secret.objects.filter(pipeline_id=pipeline.pk, name__in=wanted)
    if pipeline.config_pipeline_id:
        own = set(rows.values_list("name", flat=True))
        inherited = Secret.objects.filter(
            pipeline_id=pipeline.config_pipeline_id, name__in=set(wanted) - own
        )
        rows = Secret.objects.filter(
            pk__in=[*rows.values_list("pk", flat=True), *inherited.values_list("pk", flat=True)]
        )
    if build.event.type == "pr":
        rows = rows.filter(allow_in_pr=True)
    return rows


def secret_values(build: Build) -> dict[str, str]:
    """Name to decrypted value of every secret the build may see: what its launcher gets."""
    return {row.name: decrypt(row.encrypted_value) for row in allowed_secrets(build)}


def checkout_secret_values(pipeline: Pipeline) -> list[str]:
    """Whatever credential the pipeline's builds may clone with (the SCM's token, its deploy
    key): masked like its secrets, should a build ever print one."""
    if pipeline.scm_context == "local":
        return []
    values: list[str] = []
    credential = scm_of_context(pipeline.scm_context).clone_credential()
    if credential is not None:
        values.append(credential[1])
    key = pipeline.deploy_key_in_use()
    if key is not None:
        values.append(decrypt(key.encrypted_private_key))
    return values


def masker_for(build: Build) -> Masker:
    """A masker for the values of the build's secrets and clone credential, kept a few
    seconds."""
    # The row's creation time is part of the key: ids come back after a rolled-back insert.
    key = (build.pk, build.created_at.isoformat())
    now = time.monotonic()
    found = _maskers.get(key)
    if found is not None and found[0] > now:
        return found[1]
    cloned = [build.job.pipeline]
    if build.job.pipeline.config_pipeline_id and build.event.config_pipeline_sha:
        # A child's build also clones its parent's repository, with the parent's credential.
        parent = build.job.pipeline.config_pipeline
        if parent is not None:
            cloned.append(parent)
    masker = Masker(
        [
            *secret_values(build).values(),
            *(value for pipeline in cloned for value in checkout_secret_values(pipeline)),
        ]
    )
    _maskers[key] = (now + MASKER_TTL_SECONDS, masker)
    _maskers.move_to_end(key)
    while len(_maskers) > _MASKERS_KEPT:
        _maskers.popitem(last=False)
    return masker
