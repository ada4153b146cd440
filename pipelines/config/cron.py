"""Cron expressions, in one place: which ``freezeWindows`` entries the reference accepts,
Screwdriver's ``H`` hashing of ``buildPeriodically``, and when an expression fires next.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

# (min, max, characters allowed besides numbers) per field, seconds first as the reference's
# cron library counts them; the seconds field is always its default.
_FIELDS = (
    ("second", 0, 59, ""),
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("dayOfMonth", 1, 31, "L"),
    ("month", 1, 12, ""),
    ("dayOfWeek", 0, 7, "L"),
)
_VALID_CHARACTERS = {
    "dayOfMonth": re.compile(r"^[?,*\dL/-]+$", re.ASCII),
    "dayOfWeek": re.compile(r"^[?,*\dL#/-]+$", re.ASCII),
}
_STANDARD_CHARACTERS = re.compile(r"^[,*\d/-]+$", re.ASCII)
_ALIASES = {
    "month": {
        name: index + 1
        for index, name in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
        )
    },
    "dayOfWeek": {
        name: index for index, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
    },
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_THREE_LETTERS = re.compile(r"[a-z]{3}", re.IGNORECASE)


class _Invalid(Exception):
    """The expression is refused."""


def _number(text: str) -> float:
    """Return JS ``+text`` for the digit-only strings that reach it (``""`` is 0)."""
    if text == "":
        return 0
    try:
        return int(text, 10)
    except ValueError:
        return float("nan")


def _is_nan(value: float) -> bool:
    """Return whether value is NaN."""
    return value != value


def _parse_range(
    text: str, repeat: str | int, low: int, high: int, field: str
) -> list[int] | str | float:
    """Expand ``a-b`` (with a step) into numbers; return a single value as JS does."""
    atoms = text.split("-")
    if len(atoms) == 1:
        number = _number(text)
        return text if _is_nan(number) else number
    if not atoms[0]:
        if not atoms[1]:
            raise _Invalid(text)
        return _number(text)
    first, last = _number(atoms[0]), _number(atoms[1])
    if _is_nan(first) or _is_nan(last) or first < low or last > high or first > last:
        raise _Invalid(text)
    step = _number(repeat) if isinstance(repeat, str) else repeat
    if _is_nan(step) or step <= 0:
        raise _Invalid(text)
    values = [0] if field == "dayOfWeek" and last % 7 == 0 else []
    values.extend(
        index for index in range(int(first), int(last) + 1, int(step)) if index not in values
    )
    return values


def _parse_repeat(text: str, low: int, high: int, field: str) -> list[int] | str | float:
    """Handle ``a/step``."""
    atoms = text.split("/")
    if len(atoms) > 2:
        raise _Invalid(text)
    if len(atoms) == 2:
        start = atoms[0]
        # JS compares the text loosely with its number: "5" and "" both count as numbers.
        if not _is_nan(_number(start)):
            start = f"{start}-{high}"
        return _parse_range(start, atoms[1], low, high, field)
    return _parse_range(text, 1, low, high, field)


def _parse_field(field: str, text: str, low: int, high: int, chars: str) -> list[float | str]:
    """Return the field's values, raising _Invalid where the reference's library throws."""
    if field in _ALIASES:
        aliases = _ALIASES[field]

        def replace(match: re.Match[str]) -> str:
            name = match.group(0).lower()
            if name not in aliases:
                raise _Invalid(name)
            return str(aliases[name])

        text = _THREE_LETTERS.sub(replace, text)
    if not _VALID_CHARACTERS.get(field, _STANDARD_CHARACTERS).match(text):
        raise _Invalid(text)
    if "*" in text:
        text = text.replace("*", f"{low}-{high}")
    elif "?" in text:
        text = text.replace("?", f"{low}-{high}")
    atoms = text.split(",")
    if not all(atoms):
        raise _Invalid(text)
    values: list[float | str] = []
    for atom in atoms:
        result = _parse_repeat(atom, low, high, field)
        for value in result if isinstance(result, list) else [result]:
            if isinstance(value, str) and chars and chars in value:
                values.append(value)
                continue
            number = _number(value) if isinstance(value, str) else value
            if _is_nan(number) or number < low or number > high:
                raise _Invalid(str(value))
            values.append(number)
    return values


def _parse_nth_day(text: str) -> str:
    """Strip a ``#n`` occurrence from a day-of-week field, checking it as the reference does."""
    atoms = text.split("#")
    if len(atoms) == 1:
        return text
    nth = _number(atoms[-1])
    if any(mark in text for mark in ",/-") or len(atoms) > 2 or _is_nan(nth) or not 1 <= nth <= 5:
        raise _Invalid(text)
    return atoms[0]


def is_valid_freeze_window(value: str) -> bool:
    """Return whether value passes the reference's freeze-window cron rule."""
    fields = value.strip().split()
    if len(fields) != 5 or (fields[2] != "?" and fields[4] != "?"):
        return False
    expression = [
        "0",
        fields[0],
        fields[1],
        "*" if fields[2] == "?" else fields[2],
        fields[3],
        "*" if fields[4] == "?" else fields[4],
    ]
    try:
        parsed: dict[str, list[float | str]] = {}
        for (field, low, high, chars), text in zip(_FIELDS, expression, strict=True):
            if field == "dayOfWeek":
                text = _parse_nth_day(text)
            parsed[field] = _parse_field(field, text, low, high, chars)
        months = parsed["month"]
        if len(months) == 1:
            first_day = sorted(parsed["dayOfMonth"], key=_sort_key)[0]
            if (
                isinstance(first_day, int | float)
                and first_day > _DAYS_IN_MONTH[int(months[0]) - 1]
            ):
                return False
    except _Invalid:
        return False
    return True


def _sort_key(value: float | str) -> tuple[int, float, str]:
    """Sort numbers before strings, as the reference's library does."""
    if isinstance(value, str):
        return (1, 0, value)
    return (0, value, "")


# --- buildPeriodically: Screwdriver's H, and when a cron fires ------------------------------

_HASH_RANGE = re.compile(r"H\(\d+-\d+\)")
_HASH_STEP = re.compile(r"H/\d+")
# (low, high) of minute, hour, day of month, month, day of week, as Screwdriver bounds `H`.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(ValueError):
    """A ``buildPeriodically`` value that cannot become a schedule; the message says why."""


def string_hash(text: str) -> int:
    """The npm ``string-hash`` of text (djb2 over the characters, last to first), unsigned."""
    value = 5381
    for char in reversed(text):
        product = (value * 33) & 0xFFFFFFFF
        value = product ^ ord(char)
        # JavaScript's `^` works on signed 32-bit integers.
        if value >= 0x80000000:
            value -= 0x100000000
    return value & 0xFFFFFFFF


def _hashed(hash_value: int, low: int, high: int) -> int:
    return hash_value % (high + 1 - low) + low


def _transform_value(text: str, low: int, high: int, hash_value: int) -> str:
    """Replace ``H``, ``H/n`` and ``H(a-b)`` in each comma-separated part of one field."""
    parts = text.split(",")
    for i, part in enumerate(parts):
        if part == "H":
            parts[i] = str(_hashed(hash_value, low, high))
        elif _HASH_STEP.search(part):
            parts[i] = part.replace("H", str(_hashed(hash_value, low, high)), 1)
        elif _HASH_RANGE.search(part):
            first = int(part[2 : part.rindex("-")])
            last = int(part[part.rindex("-") + 1 : part.rindex(")")])
            if first < low or last > high or first > last:
                raise CronError(f"{part} has an invalid range, expected range {low}-{high}.")
            parts[i] = str(_hashed(hash_value, first, last))
    return ",".join(parts)


def transform_cron(expression: str, job_id: int) -> str:
    """Turn a ``buildPeriodically`` value into a plain cron expression for this job."""
    fields = expression.strip().split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} does not have exactly 5 fields (minute hour day month weekday): "
            "fix screwdriver.cd/buildPeriodically."
        )
    hash_value = string_hash(str(job_id))
    # Screwdriver always hashes the minute, so periodic builds never all start at :00.
    if fields[0] != "H" and not _HASH_RANGE.search(fields[0]):
        fields[0] = "H"
    fields = [
        _transform_value(text, low, high, hash_value)
        for text, (low, high) in zip(fields, _BOUNDS, strict=True)
    ]
    result = " ".join(fields)
    if not croniter.is_valid(result):
        raise CronError(
            f"{expression!r} is not a valid cron expression ({result!r} after H was replaced): "
            "fix screwdriver.cd/buildPeriodically."
        )
    return result


def next_run_of(cron: str, now: datetime | None = None) -> datetime:
    """When a cron expression fires next, in UTC."""
    start = (now or datetime.now(tz=UTC)).astimezone(UTC)
    return croniter(cron, start).get_next(datetime)


def expand(expression: str) -> tuple[list[list[Any]], dict[Any, Any] | None]:
    """The values each field of a five-field cron expression allows, and its ``#n`` weekdays.

    Raises ValueError, KeyError or TypeError for an expression the cron library cannot read.
    """
    expanded, nth = croniter.expand(expression)
    return expanded, nth
