"""The credential a build's launcher clones a private repository with (docs/security.md).

The launch spec only says which kind the checkout needs (`checkout.auth`); the value is
answered by `issue_checkout_credential`, to the build's own launcher, once, while the build
runs and before any of its own steps has started. It is never stored: a GitHub App's
installation token or a GitLab deploy token is issued for the build at that moment (one
repository, read-only, an hour at most), the operator's SCM token (where the operator chose
it) read from the settings, the deploy key decrypted from its row, for each answer. A GitLab
deploy token is revoked when the build ends (`revoke_checkout_credential`, from the outbox),
found by its name, which the build's id gives. A child pipeline's build also clones its
parent's repository (into $SD_CONFIG_DIR): the parent's credential is issued the same way, for
the parent's repository alone, and answered with the build's own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from builds.models import Build, BuildStatus, Step
from builds.services.creation import SETUP_STEP, skips_checkout
from pipelines.encryption import decrypt
from pipelines.models import Pipeline
from scm.base import MintedCredential, RepoRef, Scm, ScmError, ScmUnavailable
from scm.clients import scm_of_context

logger = logging.getLogger(__name__)

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
    scm = scm_of_context(pipeline.scm_context)
    if scm.mints_clone_credentials():
        # Nothing is issued for a public repository: it is cloned without a credential.
        return TOKEN if (pipeline.scm_repo or {}).get("private") is not False else ""
    return TOKEN if scm.clone_credential() else ""


def clone_credential_name(build_id: int) -> str:
    """What a credential issued for the build is called at the SCM (a GitLab deploy token):
    the server's host keeps two servers' builds of one number apart."""
    host = urlsplit(str(settings.SD_UI_URL)).netloc or "screwdriver"
    return f"screwdriver-build-{build_id} ({host})"


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


def config_parent(build: Build) -> Pipeline | None:
    """The parent pipeline whose repository a child's build clones into $SD_CONFIG_DIR (at
    the sha its event read the file at); None for a pipeline of its own."""
    parent = build.job.pipeline.config_pipeline
    return parent if parent is not None and build.event.config_pipeline_sha else None


def issue_checkout_credential(*, build_id: int) -> dict[str, Any]:
    """The credentials of the build's checkouts, for its launcher (the caller checked that the
    build token is this build's); CredentialRefused when the build may not have them now.

    The build's own repository's is the answer itself; a child pipeline's parent repository
    (cloned into $SD_CONFIG_DIR) needs one of its own, under `configCheckout`: a credential
    issued for a build reads one repository only.
    """
    build = (
        Build.objects.select_related("job__pipeline__config_pipeline", "event")
        .filter(pk=build_id)
        .first()
    )
    if build is None:
        raise CredentialRefused(f"Build {build_id} does not exist.", status=404)
    if build.status != BuildStatus.RUNNING:
        raise CredentialRefused(
            f"Build {build_id} is {build.status}: its checkout credential is handed out only "
            "while it runs."
        )
    pipeline = build.job.pipeline
    parent = config_parent(build)
    auth = checkout_auth(pipeline)
    parent_auth = checkout_auth(parent) if parent is not None else ""
    if not auth and not parent_auth:
        if pipeline.scm_context == "local":
            raise CredentialRefused(
                f"Build {build_id}'s repository is on this server: it is cloned without a "
                "credential."
            )
        raise CredentialRefused(
            f"The server has no token for {pipeline.scm_context}, or the repository is public: "
            f"build {build_id} clones without a credential."
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
    if build.checkout_credential_at is not None:
        raise _handed_out(build_id)
    minted: list[tuple[Scm, RepoRef, MintedCredential]] = []
    try:
        answer = _credential(build_id, pipeline, auth, minted) if auth else {}
        if parent is not None and parent_auth:
            answer["configCheckout"] = _credential(build_id, parent, parent_auth, minted)
    except CredentialRefused:
        _revoke_unused(build_id, minted)
        raise
    if not _take(build_id):
        # Another request of this build won the race: what this one got goes unused.
        _revoke_unused(build_id, minted)
        raise _handed_out(build_id)
    return answer


def _credential(
    build_id: int,
    pipeline: Pipeline,
    auth: str,
    minted: list[tuple[Scm, RepoRef, MintedCredential]],
) -> dict[str, Any]:
    """One repository's credential; what the SCM issued for it is added to `minted`."""
    scm = scm_of_context(pipeline.scm_context)
    if auth == TOKEN and scm.mints_clone_credentials():
        ref = pipeline.repo_ref()
        credential = _minted(build_id, scm, ref)
        minted.append((scm, ref, credential))
        return {"type": TOKEN, "username": credential.username, "password": credential.password}
    return _answer(pipeline, auth)


def _take(build_id: int) -> bool:
    # Once per build, recorded before it is answered: a step that holds the build token
    # (SD_TOKEN) can never be the second to ask.
    taken = Build.objects.filter(
        pk=build_id, status=BuildStatus.RUNNING, checkout_credential_at__isnull=True
    ).update(checkout_credential_at=timezone.now())
    return taken == 1


def _handed_out(build_id: int) -> CredentialRefused:
    return CredentialRefused(
        f"The checkout credential of build {build_id} was handed out already: its "
        "launcher gets it once."
    )


def _minted(build_id: int, scm: Scm, ref: RepoRef) -> MintedCredential:
    """A credential the SCM issues for this build alone; a refusal is final for the build."""
    try:
        return scm.mint_clone_credential(ref, name=clone_credential_name(build_id))
    except ScmUnavailable as exc:
        # The launcher asks again (a 5xx): nothing was handed out yet.
        raise CredentialRefused(str(exc), status=503) from None
    except ScmError as exc:
        # Refused for good: there is nothing left for anyone to ask for.
        _take(build_id)
        raise CredentialRefused(str(exc)) from None


def _revoke_unused(build_id: int, minted: list[tuple[Scm, RepoRef, MintedCredential]]) -> None:
    for scm, ref, credential in minted:
        try:
            scm.revoke_clone_credential(ref, credential)
        except ScmError as exc:
            logger.warning(
                "An unused clone credential of build %s stays until it expires: %s", build_id, exc
            )


def _mints_for(pipeline: Pipeline) -> bool:
    """Whether a build's credential for the pipeline's repository was issued by its SCM."""
    if pipeline.scm_context == "local" or pipeline.deploy_key_in_use() is not None:
        return False
    return scm_of_context(pipeline.scm_context).mints_clone_credentials()


def revoke_checkout_credential(*, build_id: int) -> int:
    """After the build ended, revoke what its SCM issued for its clones (GitLab deploy tokens
    of its repository and of a child's parent, found by their name); return how many were
    revoked. A GitHub installation token expires within the hour by itself."""
    build = (
        Build.objects.select_related("job__pipeline__config_pipeline", "event")
        .filter(pk=build_id)
        .first()
    )
    # A retried build's earlier attempt may have taken one even when the last did not.
    if build is None or (build.checkout_credential_at is None and not build.infra_retries):
        return 0
    parent = config_parent(build)
    revoked = 0
    failed: ScmError | None = None
    for pipeline in (build.job.pipeline, parent):
        if pipeline is None or not _mints_for(pipeline):
            continue
        scm = scm_of_context(pipeline.scm_context)
        try:
            revoked += scm.revoke_clone_credentials_named(
                pipeline.repo_ref(), name=clone_credential_name(build_id)
            )
        except ScmError as exc:
            # The other repository's is revoked all the same: one project that refuses (its
            # token lost Maintainer) must not keep the other's alive until it expires.
            failed = failed or exc
    if failed is not None:
        # The outbox tries again later (the token expires meanwhile); revoking is by name,
        # so what is revoked already is not asked for again.
        raise failed
    return revoked


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
