"""SSH deploy keys: an ed25519 key pair per pipeline, in OpenSSH's formats."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The screwdriver.yaml annotation that asks for one (read from the pipeline's branch).
ANNOT_USE_DEPLOY_KEY = "screwdriver.cd/useDeployKey"


@dataclass(frozen=True, repr=False)
class KeyPair:
    """A new key pair: `public` as a line of authorized_keys, `private` as OpenSSH's PEM."""

    public: str
    private: str
    fingerprint: str

    def __repr__(self) -> str:
        return f"KeyPair({self.fingerprint})"


def fingerprint_of(public: str) -> str:
    """ssh-keygen's fingerprint of a public key line: SHA256:<base64 without padding>."""
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def new_key_pair(comment: str) -> KeyPair:
    """A fresh ed25519 key pair whose public line ends with `comment`."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    line = f"{public.decode()} {comment}"
    return KeyPair(public=line, private=private.decode(), fingerprint=fingerprint_of(line))


def wants_deploy_key(annotations: dict[str, object] | None, *, enabled: bool) -> bool:
    """Whether a pipeline clones with its deploy key: the operator allows deploy keys and the
    pipeline's screwdriver.yaml says `screwdriver.cd/useDeployKey: true`."""
    value = (annotations or {}).get(ANNOT_USE_DEPLOY_KEY)
    return enabled and (value is True or str(value).strip().lower() == "true")
