"""Safe YAML loading with the reference's YAML 1.2 core schema and limits against hostile input."""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from .errors import ConfigError, YamlError
from .jsvalues import JsDate, holds_lone_surrogate, js_key, js_order

MAX_BYTES = 512 * 1024
# js-yaml refuses the same depth with the same words: "nesting exceeded maxDepth (100)".
MAX_DEPTH = 100
# Aliases are shared, not copied, so a small file can describe a huge tree ("billion laughs");
# count the tree as it would be expanded and refuse anything far larger than a real file.
MAX_EXPANDED_NODES = 250_000
MISSING_FILE = (
    "screwdriver.yaml does not exist. Please create a screwdriver.yaml and try to rerun your build."
)


class _CoreResolver(BaseResolver):
    """Implicit tags of js-yaml's CORE_SCHEMA plus timestamp and merge (no yes/no/on/off)."""


for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        r"^[-+]?(?:0b[01]+|0x[0-9a-fA-F]+|0o[0-7]+|[0-9]+)$",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    (
        "tag:yaml.org,2002:timestamp",
        r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
        r"(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$",
        list("0123456789"),
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
]:
    _CoreResolver.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _CoreConstructor(SafeConstructor):
    """Build plain JSON-like values the way js-yaml does (string keys, JS key order)."""

    yaml_constructors = dict(SafeConstructor.yaml_constructors)
    del yaml_constructors["tag:yaml.org,2002:set"]

    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        """Read an int as YAML 1.2 does: a leading 0 is decimal, 0o is octal."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
            if digits.startswith(prefix):
                return sign * int(digits[2:], base)
        return sign * int(digits, 10)

    def construct_yaml_timestamp(self, node: ScalarNode) -> JsDate:  # type: ignore[override]
        """Keep a timestamp as the ISO text JSON.stringify gives a JS Date."""
        value = super().construct_yaml_timestamp(node)
        if not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return JsDate(value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z")

    def construct_yaml_binary(self, node: ScalarNode) -> dict[str, int]:  # type: ignore[override]
        """Mirror a JS Uint8Array, which JSON renders as an index-keyed object."""
        data = base64.decodebytes(str(self.construct_scalar(node)).encode("ascii"))
        return {str(index): byte for index, byte in enumerate(data)}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[str, Any]:  # type: ignore[override]
        """Build a mapping with string keys; a repeated key is an error, as in js-yaml."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = js_key(self.construct_object(key_node, deep=True))
            if key in seen:
                raise YamlError(f"duplicated mapping key {_mark(key_node)}")
            seen.add(key)
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = js_key(self.construct_object(key_node, deep=True))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return js_order(mapping)

    def construct_yaml_omap(self, node: Node) -> Any:  # type: ignore[override]
        """Build an omap as js-yaml does: a list of one-key mappings."""
        pairs = yield_all(super().construct_yaml_omap(node))
        return [{js_key(key): value} for key, value in pairs]

    def construct_yaml_pairs(self, node: Node) -> Any:  # type: ignore[override]
        """Build pairs as js-yaml does: a list of [key, value] lists."""
        pairs = yield_all(super().construct_yaml_pairs(node))
        return [[key, value] for key, value in pairs]


_CoreConstructor.add_constructor("tag:yaml.org,2002:int", _CoreConstructor.construct_yaml_int)  # type: ignore[type-var]
_CoreConstructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", _CoreConstructor.construct_yaml_timestamp
)
_CoreConstructor.add_constructor("tag:yaml.org,2002:binary", _CoreConstructor.construct_yaml_binary)  # type: ignore[type-var]
_CoreConstructor.add_constructor("tag:yaml.org,2002:omap", _CoreConstructor.construct_yaml_omap)  # type: ignore[type-var]
_CoreConstructor.add_constructor("tag:yaml.org,2002:pairs", _CoreConstructor.construct_yaml_pairs)  # type: ignore[type-var]


def yield_all(generator: Any) -> list[Any]:
    """Run a PyYAML two-step constructor generator to completion and return its value."""
    value = next(generator)
    for _ in generator:
        pass
    return value  # type: ignore[no-any-return]


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _CoreConstructor,
    _CoreResolver,
):
    """PyYAML's safe pipeline with our resolver, constructor and a nesting limit."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _CoreConstructor.__init__(self)
        _CoreResolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Compose one node, refusing absurd nesting before Python's stack is at risk."""
        if self.depth >= MAX_DEPTH:
            raise YamlError(f"nesting exceeded maxDepth ({MAX_DEPTH}) {_mark(self.peek_event())}")
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return,return-value]
        finally:
            self.depth -= 1


def _mark(item: Any) -> str:
    """Return js-yaml's ``(line:column)`` position suffix for a node or event."""
    mark = getattr(item, "start_mark", None)
    return f"({mark.line + 1}:{mark.column + 1})" if mark else ""


def _check_expanded_size(root: Node) -> None:
    """Refuse alias cycles and alias trees that would expand past MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk: a recursive one could itself exhaust the stack.
    stack: list[tuple[Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise YamlError(
                    f"aliases expand to more than {MAX_EXPANDED_NODES} values; "
                    "write the repeated parts out or use fewer aliases"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlError(f"an alias refers to a node that contains it {_mark(node)}")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise YamlError(f"an alias refers to a node that contains it {_mark(child)}")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    """Return the direct child nodes of a collection node."""
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_document(text: str) -> Any:
    """Load the screwdriver.yaml document from text, raising ConfigError for anything refused."""
    if not text:
        raise ConfigError(MISSING_FILE)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(
            f"screwdriver.yaml is larger than {MAX_BYTES // 1024} KiB; split it or shorten it"
        )
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before parsing
        raise YamlError(str(exc).replace("\n", " ")) from exc
    documents: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _check_expanded_size(node)
            documents.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(f"{problem} {_mark_of(exc)}".strip()) from exc
    except (ConstructorError, yaml.YAMLError, ValueError, OverflowError) as exc:
        raise YamlError(str(exc)) from exc
    except RecursionError as exc:
        raise YamlError("the document is nested too deeply") from exc
    finally:
        loader.dispose()
    if not documents:
        documents = [None]
    if len(documents) == 1:
        return documents[0]
    for document in documents:
        if isinstance(document, dict) and _is_four(document.get("version")):
            return document
    raise YamlError(
        "Configuration is too ambigious - contains multiple documents without a version hint"
    )


def _is_four(value: Any) -> bool:
    """Return whether value is the number 4 (JS ``=== 4``)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and value == 4


def _mark_of(exc: yaml.MarkedYAMLError) -> str:
    """Return the ``(line:column)`` suffix of a PyYAML error."""
    mark = exc.problem_mark or exc.context_mark
    return f"({mark.line + 1}:{mark.column + 1})" if mark else ""


def load_spec_document(text: str) -> Any:
    """Load a published spec (a template's or a command's): as `load_document`, and refused
    when it holds a lone UTF-16 surrogate, which no database or answer can carry."""
    if holds_lone_surrogate(text):
        raise YamlError("the file is not valid Unicode: fix its encoding")
    document = load_document(text)
    if holds_lone_surrogate(document):
        raise YamlError("the file spells a lone UTF-16 surrogate (like \\ud800): remove it")
    return document
