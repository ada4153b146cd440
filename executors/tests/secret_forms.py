"""The forms of a secret a masker must hide, derived without the masker: base64 by brute force."""

from __future__ import annotations

import base64


def _determined(secret: bytes, offset: int) -> str:
    """The base64 characters of `secret` at byte `offset` of a stream that stay the same
    whatever bytes surround it."""
    streams = [
        base64.b64encode(bytes([fill]) * offset + secret + bytes([fill]) * 3).decode()
        for fill in (0x00, 0xFF, 0x5A)
    ]
    same = [all(s[i] == streams[0][i] for s in streams) for i in range(len(streams[0]))]
    # The run of stable characters after the prefix's own characters.
    start = -(-8 * offset // 6)
    end = start
    while end < len(same) and same[end]:
        end += 1
    return streams[0][start:end]


def base64_cores(secret: str) -> set[str]:
    """The base64 characters the secret alone fixes, at each of the three alignments, in the
    standard and the URL-safe alphabet."""
    found = set()
    for offset in range(3):
        core = _determined(secret.encode(), offset)
        found |= {core, core.replace("+", "-").replace("/", "_")}
    return found
