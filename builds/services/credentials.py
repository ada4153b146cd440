"""The credential a build's launcher clones a private repository with (docs/security.md).

The launch spec only says which kind the checkout needs (`checkout.auth`); the value is
answered by `issue_checkout_credential`, to the build's own launcher, once, while the build
runs and before any of its own steps has started. It is never stored: the operator's SCM
token is read from the settings, the deploy key decrypted from its row, for each answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from builds.models import Build, BuildStatus, Step
from builds.services.creation import SETUP_STEP, skips_checkout
from pipelines.encryption import decrypt
from pipelines.models import Pipeline
from scm.base import RepoRef
from scm.clients import scm_of_context

TOKEN = "token"  # noqa: S105 - the name of a kind of credential, not one
SSH_KEY = "sshKey"
# A known_hosts file larger than this is not one.
MAX_KNOWN_HOSTS_BYTES = 1 << 20


class CredentialRefused(Exception):
    """The launcher may not have the credential now; the message says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def checkout_auth(pipeline: Pipeline) -> str:
    """What a build of the pipeline clones with: its deploy key, the SCM's token, or nothing
    (a repository on this disk, or an SCM without a token: public repositories only)."""
    if pipeline.scm_context == "local":
        return ""
    if pipeline.deploy_key_in_use() is not None:
        return SSH_KEY
    return TOKEN if scm_of_context(pipeline.scm_context).clone_credential() else ""


def checkout_url(pipeline: Pipeline, ref: RepoRef, auth: str) -> str:
    """The URL a build clones: the SSH one with a deploy key, else the repository's."""
    if auth == SSH_KEY:
        return scm_of_context(pipeline.scm_context).ssh_clone_url(ref) or ref.repo_path
    return ref.repo_path


def _known_hosts() -> str:
    path = str(settings.SD_SSH_KNOWN_HOSTS or "").strip()
    if not path:
        return ""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_KNOWN_HOSTS_BYTES + 1)
    except OSError as exc:
        raise CredentialRefused(
            f"SD_SSH_KNOWN_HOSTS names a file the server cannot read ({exc.strerror}): "
            "the operator must fix it.",
            status=503,
        ) from None
    if len(data) > MAX_KNOWN_HOSTS_BYTES:
        raise CredentialRefused("SD_SSH_KNOWN_HOSTS is larger than 1 MiB.", status=503)
    return data.decode("utf-8", "replace")


def issue_checkout_credential(*, build_id: int) -> dict[str, Any]:
    """The credential of the build's checkout, for its launcher (the caller checked that the
    build token is this build's); CredentialRefused when the build may not have it now."""
    build = Build.objects.select_related("job__pipeline", "event").filter(pk=build_id).first()
    if build is None:
        raise CredentialRefused(f"Build {build_id} does not exist.", status=404)
    if build.status != BuildStatus.RUNNING:
        raise CredentialRefused(
            f"Build {build_id} is {build.status}: its checkout credential is handed out only "
            "while it runs."
        )
    pipeline = build.job.pipeline
    if pipeline.scm_context == "local":
        raise CredentialRefused(
            f"Build {build_id}'s repository is on this server: it is cloned without a credential."
        )
    auth = checkout_auth(pipeline)
    if not auth:
        raise CredentialRefused(
            f"The server has no token for {pipeline.scm_context}: build {build_id} clones "
            "without a credential."
        )
    if skips_checkout(build.job_config()):
        raise CredentialRefused(f"Build {build_id}'s job skips the clone: it needs no credential.")
    started = Step.objects.filter(build_id=build_id).filter(
        ~Q(name=SETUP_STEP), start_time__isnull=False
    )
    if started.exists():
        raise CredentialRefused(
            f"Build {build_id} has started its own steps: the checkout credential is handed "
            "out only before them."
        )
    answer = _answer(pipeline, auth)
    # Once per build, recorded before it is answered: a step that holds the build token
    # (SD_TOKEN) can never be the second to ask.
    taken = Build.objects.filter(
        pk=build_id, status=BuildStatus.RUNNING, checkout_credential_at__isnull=True
    ).update(checkout_credential_at=timezone.now())
    if taken != 1:
        raise CredentialRefused(
            f"The checkout credential of build {build_id} was handed out already: its "
            "launcher gets it once."
        )
    return answer


def _answer(pipeline: Pipeline, auth: str) -> dict[str, Any]:
    if auth == SSH_KEY:
        key = pipeline.deploy_key_in_use()
        if key is None:
            raise CredentialRefused(f"Pipeline {pipeline.pk} has no deploy key any more.")
        try:
            private_key = decrypt(key.encrypted_private_key)
        except ValueError as exc:
            raise CredentialRefused(str(exc), status=503) from None
        return {"type": SSH_KEY, "privateKey": private_key, "knownHosts": _known_hosts()}
    credential = scm_of_context(pipeline.scm_context).clone_credential()
    if credential is None:
        raise CredentialRefused(f"The server has no token for {pipeline.scm_context}.")
    username, password = credential
    return {"type": TOKEN, "username": username, "password": password}
