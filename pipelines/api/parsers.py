"""A JSON body parser that refuses text no database can store: lone UTF-16 surrogates."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def holds_lone_surrogate(value: Any) -> bool:
    """Whether any string in a parsed JSON value cannot be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(holds_lone_surrogate(k) or holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_lone_surrogate(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """JSON, but a `\\ud800`-style escape that is not half of a pair is a 400, not a 500 later."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if holds_lone_surrogate(data):
            raise ParseError(
                "The body holds a lone UTF-16 surrogate escape (like \\ud800): send valid Unicode."
            )
        return data
