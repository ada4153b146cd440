"""Errors raised while parsing a screwdriver.yaml; each renders like the reference's error."""

from __future__ import annotations


class ConfigError(Exception):
    """A user error in a screwdriver.yaml, rendered as ``<kind>: <message>``."""

    kind = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def render(self) -> str:
        """Return the text the reference puts in ``errors``."""
        return f"{self.kind}: {self.message}"


class YamlError(ConfigError):
    """The text is not YAML we accept (syntax, size, depth, aliases, tags)."""

    kind = "YAMLException"


class SchemaError(ConfigError):
    """The document does not fit the screwdriver.yaml schema."""

    kind = "ValidationError"


class ConfigErrorList(ConfigError):
    """Several errors thrown together; the reference joins their texts with commas."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages

    def render(self) -> str:
        """Return the comma-joined ``Error: ...`` texts."""
        return ",".join(f"Error: {message}" for message in self.messages)


class TypeErrorLike(ConfigError):
    """A case where the reference itself crashes with a JavaScript TypeError; we say the same."""

    kind = "TypeError"
