"""A launcher reporter for tests: it keeps what the steps did in memory."""

from __future__ import annotations

from datetime import datetime

from executors.launcher.logs import Block, lines_of


class Collector:
    """A reporter that keeps everything in memory."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None]] = []
        self.output: dict[str, list[bytes]] = {}
        # The step reported as the build's last, whose end the final status carries.
        self.last: str | None = None

    def step_started(self, name: str, at: datetime) -> None:
        self.events.append(("start", name, None))

    def lines(self, name: str, blocks: list[Block]) -> None:
        self.output.setdefault(name, []).extend(raw for _t, raw in lines_of(blocks))

    def step_ended(self, name: str, at: datetime, code: int, *, last: bool = False) -> None:
        self.events.append(("end", name, code))
        if last:
            self.last = name

    def text(self, name: str) -> list[str]:
        return [raw.decode("utf-8", "replace") for raw in self.output.get(name, [])]
