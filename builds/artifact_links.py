"""Capability addresses for a build's artifacts: what lets a sandboxed report load its siblings.

An HTML report is shown in a frame whose origin is opaque (builds.artifact_responses), so the
requests it makes carry no session of ours. Its address holds a short-lived token instead,
`/v4/builds/{id}/artifacts-view/{token}/{path}`: relative URLs in the report (`style.css`,
`img/logo.png`) resolve under the same token and load without cookies.

The token is signed with Django's signing (HMAC-SHA256 of the server's secret key under a salt
of its own, so no other signed value of the server is ever accepted as one) and checked in
constant time. It names one build, the person it was made for and their sign-in generation
(a sign-out ends it), and when it expires. What it opens is only what that build itself wrote,
so a report that reads its own address learns nothing its build did not already have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.utils import timezone

SALT = "screwdriver.builds.artifact-view"
# Long enough to read a report and follow its links; a new visit to the page makes a new one.
VIEW_TOKEN_LIFETIME = timedelta(hours=1)


class ViewTokenRefused(Exception):
    """The token is not one this server signed for this build, or it has expired."""


@dataclass(frozen=True)
class ViewGrant:
    """What a verified token grants: reading `build_id`'s artifacts as `viewer_id` could."""

    build_id: int
    viewer_id: int
    generation: int
    expires: datetime


def _signer() -> signing.Signer:
    # "." is not in the signature's alphabet and keeps the token one plain path segment.
    return signing.Signer(salt=SALT, sep=".", algorithm="sha256")


def sign_view_token(
    *, build_id: int, viewer_id: int, generation: int, now: datetime | None = None
) -> str:
    """A token that opens `build_id`'s artifacts for `viewer_id` until VIEW_TOKEN_LIFETIME ends."""
    expires = int(((now or timezone.now()) + VIEW_TOKEN_LIFETIME).timestamp())
    return _signer().sign(f"{build_id}.{viewer_id}.{generation}.{expires}")


def check_view_token(token: str, *, build_id: int, now: datetime | None = None) -> ViewGrant:
    """The grant `token` holds for `build_id`; ViewTokenRefused says why there is none."""
    try:
        # Signer.unsign compares the signature in constant time.
        value = _signer().unsign(token)
    except signing.BadSignature:
        raise ViewTokenRefused(
            f"This address of build {build_id}'s artifacts is not valid: "
            "open the report from the build page again."
        ) from None
    fields = value.split(".")
    if len(fields) != 4 or not all(field.isdigit() for field in fields):
        raise ViewTokenRefused(f"This address of build {build_id}'s artifacts is not valid.")
    signed_build, viewer_id, generation, expires = (int(field) for field in fields)
    if signed_build != build_id:
        raise ViewTokenRefused(
            f"This address was made for the artifacts of another build, not build {build_id}."
        )
    expiry = datetime.fromtimestamp(expires, tz=UTC)
    if (now or timezone.now()) >= expiry:
        raise ViewTokenRefused(
            f"This address of build {build_id}'s artifacts has expired: "
            "open the report from the build page again."
        )
    return ViewGrant(build_id, viewer_id, generation, expiry)
