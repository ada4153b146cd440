"""Small helpers that make Python values behave like the JavaScript values the reference sees."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

_ARRAY_INDEX = re.compile(r"^(?:0|[1-9][0-9]*)$")


class JsDate(str):
    """A YAML timestamp: a JS Date, kept as its ISO text but not a string to the schema."""

    __slots__ = ()


def js_number(value: float) -> str:
    """Return ``String(value)`` for a JS number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if -7 < power < 21:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def js_key(value: Any) -> str:
    """Return the string a JS object uses as the key for a YAML key."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return js_number(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_key(item) for item in value)
    return "[object Object]"


def js_order(mapping: dict[str, Any]) -> dict[str, Any]:
    """Order keys as a JS object does: array-index keys ascending first, then insertion order."""
    indexes = [key for key in mapping if _ARRAY_INDEX.match(key) and int(key) < 2**32 - 1]
    if not indexes:
        return mapping
    ordered = {key: mapping[key] for key in sorted(indexes, key=int)}
    ordered.update((key, value) for key, value in mapping.items() if key not in ordered)
    return ordered


def js_stringify(value: Any) -> str:
    """Return ``JSON.stringify(value)`` for a JSON-like value."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(js_stringify(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{json.dumps(key, ensure_ascii=False)}:{js_stringify(item)}"
                for key, item in value.items()
            )
            + "}"
        )
    return json.dumps(str(value), ensure_ascii=False)


def truthy(value: Any) -> bool:
    """Return JavaScript truthiness for a JSON-like value ([] and {} are truthy)."""
    if isinstance(value, list | dict):
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


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
