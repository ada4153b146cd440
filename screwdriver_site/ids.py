"""Ids and counts as the database can hold them: anything larger is the client's mistake.

Every row id is a 64-bit integer (BigAutoField); counts such as a pull request's number or a
log line's are 32-bit columns. A value past these bounds must be a 4xx (or a 404 in a path),
never an overflow inside the database driver.
"""

from __future__ import annotations

from rest_framework import serializers

MAX_ID = 2**63 - 1
MAX_INT = 2**31 - 1


class IdConverter:
    """`<id:name>` in a URL: a row id, at most MAX_ID; anything else does not match (404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(f"{value} is larger than any id")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


def parse_id(raw: str | None) -> int | None:
    """A row id from a form or query string, or None when it is not one."""
    if not raw or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    number = int(raw)
    return number if 0 < number <= MAX_ID else None


def id_field(**kwargs: object) -> serializers.IntegerField:
    """A serializer field for a row id: 1 to MAX_ID."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)  # type: ignore[arg-type]


def count_field(*, low: int = 0, **kwargs: object) -> serializers.IntegerField:
    """A serializer field for a number kept in a 32-bit column (a PR number, a line number)."""
    return serializers.IntegerField(min_value=low, max_value=MAX_INT, **kwargs)  # type: ignore[arg-type]
