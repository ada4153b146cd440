"""The capability token of a build's artifacts: what it grants, for how long, and that nothing
but a token this server signed for that build is taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import signing

from builds.artifact_links import (
    SALT,
    VIEW_TOKEN_LIFETIME,
    ViewGrant,
    ViewTokenRefused,
    check_view_token,
    sign_view_token,
)
from screwdriver_site.tokens import issue_guest_token

MADE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def token(build_id: int = 7, viewer_id: int = 3, generation: int = 2) -> str:
    return sign_view_token(build_id=build_id, viewer_id=viewer_id, generation=generation, now=MADE)


def refusal(value: str, *, build_id: int = 7, now: datetime = MADE) -> str:
    with pytest.raises(ViewTokenRefused) as refused:
        check_view_token(value, build_id=build_id, now=now)
    return str(refused.value)


def test_it_grants_its_build_to_its_viewer_until_it_expires() -> None:
    assert check_view_token(token(), build_id=7, now=MADE) == ViewGrant(
        build_id=7, viewer_id=3, generation=2, expires=MADE + VIEW_TOKEN_LIFETIME
    )


def test_it_is_one_plain_path_segment() -> None:
    value = token()
    assert "/" not in value and "?" not in value and "%" not in value and ":" not in value
    assert len(value) < 80


def test_it_expires_after_its_lifetime_on_the_clock() -> None:
    with time_machine.travel(MADE, tick=False) as clock:
        value = sign_view_token(build_id=7, viewer_id=3, generation=2)
        clock.shift(VIEW_TOKEN_LIFETIME - timedelta(seconds=1))
        assert check_view_token(value, build_id=7).viewer_id == 3
        clock.shift(timedelta(seconds=1))
        with pytest.raises(ViewTokenRefused, match="has expired: open the report"):
            check_view_token(value, build_id=7)


def test_a_token_of_another_build_is_refused() -> None:
    assert refusal(token(build_id=8)) == (
        "This address was made for the artifacts of another build, not build 7."
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda value: value.replace("7.", "8.", 1),  # another build, same signature
        lambda value: value.replace(".3.", ".4.", 1),  # another viewer
        lambda value: value.replace(".2.", ".0.", 1),  # an older sign-in generation
        lambda value: value[:-1] + ("A" if value[-1] != "A" else "B"),  # the signature
        lambda value: value.rsplit(".", 1)[0],  # no signature
        lambda value: value + "x",
        lambda value: "",
        lambda value: "7.3.2.9999999999.not-a-signature",
    ],
    ids=["build", "viewer", "generation", "signature", "unsigned", "longer", "empty", "forged"],
)
def test_a_tampered_token_is_refused(tamper: Any) -> None:
    assert refusal(tamper(token())) == (
        "This address of build 7's artifacts is not valid: open the report from the build page "
        "again."
    )


def test_a_later_expiry_cannot_be_written_in() -> None:
    value = token()
    build, viewer, generation, expires, signature = value.split(".")
    later = f"{build}.{viewer}.{generation}.{int(expires) + 86400}.{signature}"
    assert "not valid" in refusal(later, now=MADE + 2 * VIEW_TOKEN_LIFETIME)


def test_only_values_signed_under_its_own_salt_are_taken() -> None:
    # The server's other signatures (another salt, Django's default one) and its JWTs.
    other_salt = signing.Signer(salt="another", sep=".").sign("7.3.2.9999999999")
    no_salt = signing.Signer(sep=".").sign("7.3.2.9999999999")
    for value in (other_salt, no_salt, issue_guest_token()):
        assert "not valid" in refusal(value)
    # And its own salt over a value of another shape.
    odd = signing.Signer(salt=SALT, sep=".").sign("7.3.x.9999999999")
    assert refusal(odd) == "This address of build 7's artifacts is not valid."


def test_a_token_signed_with_another_secret_key_is_refused(settings: Any) -> None:
    value = token()
    settings.SECRET_KEY = "another-secret-key-of-another-installation-0123456789"
    assert "not valid" in refusal(value)
