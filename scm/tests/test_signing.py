from __future__ import annotations

import hashlib
import hmac

import pytest
from pytest_django.fixtures import Settings

from scm.signing import repository_key, sign, verify

BODY = b'{"repository": "/srv/repo.git", "refs": []}'
KEY = b"secret-key"


def test_sign_gives_a_sha256_header_value() -> None:
    expected = hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, KEY) == f"sha256={expected}"


def test_verify_accepts_a_good_signature() -> None:
    assert verify(BODY, KEY, sign(BODY, KEY))


def test_verify_accepts_upper_case_hex() -> None:
    assert verify(BODY, KEY, "sha256=" + sign(BODY, KEY).removeprefix("sha256=").upper())


def test_verify_rejects_the_wrong_key() -> None:
    assert not verify(BODY, b"other-key", sign(BODY, KEY))


def test_verify_rejects_a_tampered_body() -> None:
    assert not verify(BODY + b" ", KEY, sign(BODY, KEY))


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha256=zz", "garbage", "sha256=ü" * 3])
def test_verify_rejects_missing_or_malformed_headers(header: str | None) -> None:
    assert not verify(BODY, KEY, header)


def test_verify_rejects_other_algorithms() -> None:
    sha1 = hmac.new(KEY, BODY, hashlib.sha1).hexdigest()
    assert not verify(BODY, KEY, f"sha1={sha1}")


def test_verify_rejects_a_truncated_signature() -> None:
    assert not verify(BODY, KEY, sign(BODY, KEY)[:-2])


def test_repository_key_differs_per_repository(settings: Settings) -> None:
    settings.SECRET_KEY = "server-secret"
    first = repository_key("/srv/a.git")
    assert first == repository_key("/srv/a.git")
    assert first != repository_key("/srv/b.git")
    assert len(first) == 32


def test_repository_key_depends_on_the_server_secret(settings: Settings) -> None:
    settings.SECRET_KEY = "one"
    first = repository_key("/srv/a.git")
    settings.SECRET_KEY = "two"
    assert repository_key("/srv/a.git") != first
