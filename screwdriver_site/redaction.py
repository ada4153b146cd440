"""Credentials that arrive in a query string (`?api_token=X`) are never written anywhere.

Screwdriver's clients pass API tokens as `api_token`; OAuth sends its one-time `code` back in
the callback's query. Every log line and error report that shows a request's address goes
through `redact_query`, which keeps the parameter's name and replaces its value. The token of
a capability address of a build's artifacts (`/artifacts-view/TOKEN/`) is in the path instead:
it is replaced too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

# A parameter whose name holds one of these words carries a credential (api_token, token,
# access_token, client_secret, password, key, signature), and OAuth's authorization code.
CREDENTIAL_NAME = re.compile(
    r"token|secret|passw|key|signature|credential|^code$|^sig$", flags=re.IGNORECASE
)


def is_credential(name: str) -> bool:
    """True for a query parameter name that carries a credential."""
    return bool(CREDENTIAL_NAME.search(name))


def redact_query_string(query: str) -> str:
    """A query string (no `?`) with the value of every credential parameter redacted."""
    fields = []
    for field in query.split("&"):
        name, equals, _value = field.partition("=")
        fields.append(
            f"{name}={REDACTED}" if equals and is_credential(unquote_plus(name)) else field
        )
    return "&".join(fields)


# The capability segment of a build's artifacts address (builds.artifact_links).
_CAPABILITY = re.compile(r"(?<=/artifacts-view/)[^/?#]+")


def redact_path(path: str) -> str:
    """The path with the token of a capability address of artifacts replaced by `[redacted]`."""
    return _CAPABILITY.sub(REDACTED, path)


def redact_query(uri: str) -> str:
    """The address with every credential in it (a query parameter's value, the token of a
    capability address) replaced by `[redacted]`."""
    path, question, query = uri.partition("?")
    if not question:
        return redact_path(uri)
    return f"{redact_path(path)}?{redact_query_string(query)}"


# A `name=value` pair of a query string inside any text: a repr, a rendered page (`&amp;`).
_PAIR_IN_TEXT = re.compile(r"(?<=[?&;])(?P<name>[\w.%+-]+)=(?P<value>[^&\s'\"<>#;]+)")


def redact_text(text: str) -> str:
    """Any text with every credential of an address in it redacted (see redact_query)."""

    def replace(match: re.Match[str]) -> str:
        if not is_credential(unquote_plus(match["name"])):
            return match[0]
        return f"{match['name']}={REDACTED}"

    return redact_path(_PAIR_IN_TEXT.sub(replace, text))
