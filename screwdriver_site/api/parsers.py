"""A JSON body parser that refuses text no database can store: lone UTF-16 surrogates."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from pipelines.config.jsvalues import holds_lone_surrogate


class StrictJSONParser(JSONParser):
    """JSON, but a `\\ud800`-style escape that is not half of a pair is a 400, not a 500 later."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if holds_lone_surrogate(data):
            raise ParseError(
                "The body holds a lone UTF-16 surrogate escape (like \\ud800): send valid Unicode."
            )
        return data
