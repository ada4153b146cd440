"""A tiny Joi work-alike: enough of its rules and messages to validate a screwdriver.yaml."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .jsvalues import JsDate, js_number

Path = tuple[str | int, ...]

_MESSAGES = {
    "any.required": "{label} is required",
    "object.base": "{label} must be of type object",
    "object.unknown": "{label} is not allowed",
    "object.length": "{label} must have {limit} key{plural}",
    "array.base": "{label} must be an array",
    "array.min": "{label} must contain at least {limit} items",
    "string.base": "{label} must be a string",
    "string.empty": "{label} is not allowed to be empty",
    "string.max": "{label} length must be less than or equal to {limit} characters long",
    "string.pattern.base": (
        "{label} with value {value} fails to match the required pattern: {regex}"
    ),
    "number.base": "{label} must be a number",
    "number.integer": "{label} must be an integer",
    "number.min": "{label} must be greater than or equal to {limit}",
    "number.max": "{label} must be less than or equal to {limit}",
    "number.positive": "{label} must be a positive number",
    "boolean.base": "{label} must be a boolean",
    "alternatives.any": "{label} does not match any of the allowed types",
    "alternatives.match": "{label} does not match any of the allowed types",
    "alternatives.types": "{label} must be one of {types}",
    "any.only": "{label} must be {one_of}{valids}",
    "any.unknown": "{label} is not allowed",
    "object.missing": "{label} must contain at least one of {peers}",
    "array.includesRequiredUnknowns": "{label} does not contain {count} required value(s)",
    "string.email": "{label} must be a valid email",
    "string.uriRelativeOnly": "{label} must be a valid relative uri",
    # The reference's cron rule has no message of its own, so Joi says that instead.
    "string.cron": 'Error code "string.cron" is not defined, your custom type is missing '
    "the correct messages definition",
}


def label(path: Path) -> str:
    """Return Joi's quoted label for a path, e.g. ``"jobs.main.steps[0]"``."""
    if path and isinstance(path[-1], Label):
        return f'"{path[-1].text}"'
    text = ""
    for part in path:
        if isinstance(part, Label):
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return f'"{text or "value"}"'


class Label(str):
    """A path end that stands for an explicit Joi ``.label()``; it renders as that text."""

    __slots__ = ()

    @property
    def text(self) -> str:
        """Return the label text."""
        return str(self)


@dataclass
class Report:
    """One validation error: Joi's code, the path it is about and the rendered message."""

    code: str
    path: Path
    message: str


Messages = dict[str, str]


def _report(code: str, path: Path, messages: Messages, **context: Any) -> Report:
    """Render one report, letting inherited custom messages override the defaults."""
    template = messages.get(code, _MESSAGES[code])
    return Report(code, path, template.format(label=label(path), **context))


_MISSING = object()
# A key in the messages dict that asks for Joi's abortEarly behaviour down the tree.
ABORT_EARLY = "\0abortEarly"


class JsRegex:
    """A JS regular expression: its source for messages, a Python equivalent for matching."""

    def __init__(self, source: str) -> None:
        self.source = source
        python = source[:-1] + r"\Z" if source.endswith("$") else source
        # JS reads "[\w-.]" as \w, "-" and "."; Python wants the dash escaped.
        python = python.replace(r"\w-.", r"\w\-.")
        # JS \w and \d are ASCII-only, and JS $ does not match before a trailing newline.
        self.compiled = re.compile(python, re.ASCII)

    def test(self, text: str) -> bool:
        """Return whether the expression matches anywhere in text, as RegExp.test does."""
        return self.compiled.search(text) is not None

    def __str__(self) -> str:
        return f"/{self.source}/"


@dataclass
class Schema:
    """Base of the schema types; ``messages`` overrides messages here and in children."""

    messages: Messages = field(default_factory=dict, kw_only=True)
    required: bool = field(default=False, kw_only=True)
    forbidden: bool = field(default=False, kw_only=True)
    # A value (deep-copied) that a missing object key takes, as Joi's .default().
    default: Any = field(default=_MISSING, kw_only=True)
    # An explicit Joi .label(): messages name it instead of the path.
    label: str | None = field(default=None, kw_only=True)
    # Joi's .allow(null).
    nullable: bool = field(default=False, kw_only=True)

    def check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        """Validate value; return the (converted) value and the reports."""
        merged = {**messages, **self.messages} if self.messages else messages
        if self.label is not None:
            path = (*path, Label(self.label))
        if self.forbidden:
            return value, [_report("any.unknown", path, merged)]
        if self.nullable and value is None:
            return value, []
        value, reports = self._check(value, path, merged)
        # Joi's abortEarly (the notification plugins validate that way): the first error only.
        return value, reports[:1] if ABORT_EARLY in merged else reports

    def has_default(self) -> bool:
        """Return whether a missing key takes a default value."""
        return self.default is not _MISSING

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        raise NotImplementedError


@dataclass
class AnyValue(Schema):
    """Anything goes (Joi.any())."""

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        return value, []


@dataclass
class Str(Schema):
    """Joi.string() with optional max length, regexes and a custom rule."""

    max: int | None = None
    pattern: JsRegex | None = None
    rule: Callable[[str, Path, Messages], Report | None] | None = None
    valid: tuple[str, ...] = ()
    allow_empty: bool = False

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        if self.valid and value not in self.valid:
            one_of = "" if len(self.valid) == 1 else "one of "
            valids = f"[{', '.join(self.valid)}]"
            return value, [_report("any.only", path, messages, one_of=one_of, valids=valids)]
        if not isinstance(value, str) or isinstance(value, JsDate):
            return value, [_report("string.base", path, messages)]
        if value == "":
            if self.allow_empty:
                return value, []
            return value, [_report("string.empty", path, messages)]
        reports = []
        if self.max is not None and len(value.encode("utf-16-le")) // 2 > self.max:
            reports.append(_report("string.max", path, messages, limit=self.max))
        if self.pattern is not None and not self.pattern.test(value):
            reports.append(
                _report(
                    "string.pattern.base", path, messages, value=f'"{value}"', regex=self.pattern
                )
            )
        if self.rule is not None and (report := self.rule(value, path, messages)):
            reports.append(report)
        return value, reports


@dataclass
class Num(Schema):
    """Joi.number() with the integer/min/max/positive rules; numeric strings convert."""

    integer: bool = False
    min: float | None = None
    max: float | None = None
    positive: bool = False

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        if isinstance(value, str) and not isinstance(value, JsDate):
            try:
                value = float(value) if value.strip() else value
                value = int(value) if isinstance(value, float) and value.is_integer() else value
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, [_report("number.base", path, messages)]
        reports = []
        if self.integer and not float(value).is_integer():
            reports.append(_report("number.integer", path, messages))
        if self.min is not None and value < self.min:
            reports.append(_report("number.min", path, messages, limit=js_number(self.min)))
        if self.max is not None and value > self.max:
            reports.append(_report("number.max", path, messages, limit=js_number(self.max)))
        if self.positive and value <= 0:
            reports.append(_report("number.positive", path, messages))
        return value, reports


@dataclass
class Bool(Schema):
    """Joi.boolean(); the strings true/false convert."""

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", []
        if not isinstance(value, bool):
            return value, [_report("boolean.base", path, messages)]
        return value, []


@dataclass
class Arr(Schema):
    """Joi.array().items(one schema).min(n)."""

    items: Schema | None = None
    min: int | None = None

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        if not isinstance(value, list):
            return value, [_report("array.base", path, messages)]
        if self.items is not None and self.items.required and not value:
            return value, [_report("array.includesRequiredUnknowns", path, messages, count=1)]
        reports: list[Report] = []
        result = []
        for index, item in enumerate(value):
            if self.items is None:
                result.append(item)
                continue
            converted, item_reports = self.items.check(item, (*path, index), messages)
            result.append(converted)
            reports.extend(item_reports)
        if self.min is not None and len(value) < self.min:
            reports.append(_report("array.min", path, messages, limit=self.min))
        return result, reports


@dataclass
class Obj(Schema):
    """Joi.object() with keys, key patterns, unknown-key policy and an exact key count."""

    keys: dict[str, Schema] | None = None
    # Key matchers: a regex, a schema the key must satisfy (Joi's pattern(schema)), or None.
    patterns: Sequence[tuple[JsRegex | Schema | None, Schema]] = ()
    length: int | None = None
    # Joi's .or(...): at least one of these keys must be present.
    any_of: tuple[str, ...] = ()
    # Joi's .unknown(true): keys nobody described pass unchecked.
    unknown: bool = False

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        if isinstance(value, JsDate):
            # A JS Date is an object without own keys to Joi.
            value = {}
        if not isinstance(value, dict):
            return value, [_report("object.base", path, messages)]
        reports: list[Report] = []
        result = dict(value)
        unprocessed = list(value)
        for key, schema in (self.keys or {}).items():
            if key not in value:
                if schema.required:
                    reports.append(_report("any.required", (*path, key), messages))
                elif schema.has_default():
                    result[key] = copy.deepcopy(schema.default)
                continue
            unprocessed.remove(key)
            result[key], key_reports = schema.check(value[key], (*path, key), messages)
            reports.extend(key_reports)
        for key in list(unprocessed):
            for matcher, schema in self.patterns:
                if _key_matches(matcher, key):
                    unprocessed.remove(key)
                    result[key], key_reports = schema.check(value[key], (*path, key), messages)
                    reports.extend(key_reports)
                    break
        if (self.keys is not None or self.patterns) and not self.unknown:
            reports.extend(_report("object.unknown", (*path, key), messages) for key in unprocessed)
        # Joi runs rules such as length only when the keys themselves passed.
        if self.length is not None and len(value) != self.length and not reports:
            plural = "" if self.length == 1 else "s"
            reports.append(
                _report("object.length", path, messages, limit=self.length, plural=plural)
            )
        if self.any_of and not any(key in value for key in self.any_of):
            peers = f"[{', '.join(self.any_of)}]"
            reports.append(_report("object.missing", path, messages, peers=peers))
        return result, reports


def _key_matches(matcher: JsRegex | Schema | None, key: str) -> bool:
    """Return whether an object key matches a pattern's key matcher."""
    if matcher is None:
        return True
    if isinstance(matcher, JsRegex):
        return matcher.test(key)
    return not matcher.check(key, (), {})[1]


@dataclass
class Alt(Schema):
    """Joi.alternatives().try(...): the first match wins; failures merge as Joi merges them."""

    options: Sequence[Schema] = ()

    def _check(self, value: Any, path: Path, messages: Messages) -> tuple[Any, list[Report]]:
        failures: list[list[Report]] = []
        for option in self.options:
            converted, reports = option.check(value, path, messages)
            if not reports:
                return converted, []
            failures.append(reports)
        return value, self._merge(failures, path, messages)

    @staticmethod
    def _merge(failures: list[list[Report]], path: Path, messages: Messages) -> list[Report]:
        """Pick the error Joi reports when no alternative matched."""
        if len(failures) == 1:
            return failures[0]
        if any(len(reports) > 1 for reports in failures):
            return [_report("alternatives.match", path, messages)]
        types: list[str] = []
        complex_reports: list[Report] = []
        for (report,) in failures:
            parts = report.code.split(".")
            if len(report.path) != len(path) or parts[1] != "base":
                complex_reports.append(report)
            elif parts[0] not in types:
                types.append(parts[0])
        if not complex_reports:
            return [_report("alternatives.types", path, messages, types=f"[{', '.join(types)}]")]
        if len(complex_reports) == 1:
            return complex_reports
        return [_report("alternatives.match", path, messages)]


def validate(schema: Schema, value: Any, *, abort_early: bool = False) -> tuple[Any, list[Report]]:
    """Validate value against schema with Joi's defaults (conversion on, all errors unless told)."""
    return schema.check(value, (), {ABORT_EARLY: ""} if abort_early else {})
