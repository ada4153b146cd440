"""Encryption at rest for pipeline secrets (Fernet, with a key derived from the server's)."""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from screwdriver_site.env import env_str


@cache
def _fernet() -> Fernet:
    material = env_str("SD_SECRETS_KEY") or settings.SECRET_KEY
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"screwdriver secrets v1"
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(
            "A secret could not be decrypted: the server's key changed since it was stored."
        ) from exc
