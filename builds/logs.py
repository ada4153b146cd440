"""Step logs: append-only numbered batches in, pages of Screwdriver-shaped lines out."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from builds import live
from builds.models import LogBatch, Step

MAX_BATCH_LINES = 1000
LINES_PER_PAGE = 100
MAX_PAGES = 100


class LogBatchError(ValueError):
    """A log batch that cannot be stored as sent; the message says what to fix."""

    status = 400


class LogBatchConflict(LogBatchError):
    """A resend of a stored seq that holds other lines than the stored batch."""

    status = 409


@dataclass(frozen=True)
class LogPage:
    lines: list[dict[str, Any]]
    more: bool


def _line_bytes(line: Any, index: int) -> tuple[int, bytes]:
    if not isinstance(line, dict):
        raise LogBatchError(f"lines[{index}] must be an object with t and m (or b).")
    t = line.get("t")
    if not isinstance(t, int) or isinstance(t, bool):
        raise LogBatchError(f"lines[{index}].t must be an integer timestamp in milliseconds.")
    if "m" in line and isinstance(line["m"], str):
        return t, line["m"].encode("utf-8", "surrogatepass")
    if "b" in line and isinstance(line["b"], str):
        try:
            return t, base64.b64decode(line["b"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LogBatchError(f"lines[{index}].b is not valid base64.") from exc
    raise LogBatchError(f"lines[{index}] needs a text m or a base64 b.")


def append_batch(*, step: Step, seq: int, first_line: int, lines: list[Any]) -> bool:
    """Store one batch once; a resend of the same seq is accepted and changes nothing.

    A resend must hold the lines of the first try: one that starts elsewhere or holds more
    lines is refused rather than taken as stored, so no line is dropped without a word.
    """
    if not isinstance(lines, list) or not lines:
        raise LogBatchError("lines must be a non-empty list.")
    if len(lines) > MAX_BATCH_LINES:
        raise LogBatchError(f"A batch holds at most {MAX_BATCH_LINES} lines.")
    if seq < 0 or first_line < 0:
        raise LogBatchError("seq and firstLine must not be negative.")
    parsed = [_line_bytes(line, i) for i, line in enumerate(lines)]
    for _, raw in parsed:
        if b"\n" in raw:
            raise LogBatchError("A log line must not contain a newline.")
    try:
        with transaction.atomic():
            LogBatch.objects.create(
                step=step,
                seq=seq,
                first_line=first_line,
                line_count=len(parsed),
                data=LogBatch.pack([raw for _, raw in parsed]),
                times=[t for t, _ in parsed],
            )
            end = first_line + len(parsed)
            Step.objects.filter(pk=step.pk, lines__lt=end).update(lines=end)
            live.publish_lines(
                build_id=step.build_id,
                step=step.name,
                lines=[
                    {"n": first_line + i, "t": t, "m": raw.decode("utf-8", "replace")}
                    for i, (t, raw) in enumerate(parsed)
                ],
            )
    except IntegrityError:
        stored = LogBatch.objects.filter(step=step, seq=seq).first()
        if stored is not None and (stored.first_line, stored.line_count) != (
            first_line,
            len(parsed),
        ):
            last = stored.first_line + stored.line_count - 1
            raise LogBatchConflict(
                f"Batch {seq} of step {step.name} is stored with lines {stored.first_line} to "
                f"{last}; a resend must carry the same lines, and new lines need a new seq."
            ) from None
        return False
    return True


def read_page(*, step: Step, start: int = 0, pages: int = 10, sort: str = "ascending") -> LogPage:
    """Lines of a step from line `start`, `pages` pages of 100, as Screwdriver's logs endpoint."""
    pages = max(1, min(pages, MAX_PAGES))
    limit = pages * LINES_PER_PAGE
    start = max(0, start)
    total = step.lines
    if sort == "descending":
        # Descending reads backwards from `start` (or from the end when start is past it).
        upper = min(start, total - 1) if start else total - 1
        lower = max(0, upper - limit + 1)
        lines = _collect(step, lower, upper + 1)
        lines.reverse()
        return LogPage(lines=lines, more=lower > 0)
    lines = _collect(step, start, start + limit)
    next_line = start + len(lines)
    finished = step.end_time is not None
    return LogPage(lines=lines, more=next_line < total or not finished)


def _collect(step: Step, lower: int, upper: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if upper <= lower:
        return out
    batches = (
        LogBatch.objects.filter(
            step=step, first_line__gte=lower - MAX_BATCH_LINES + 1, first_line__lt=upper
        )
        # first_line + line_count, not lower - line_count: the columns are unsigned on MySQL.
        .alias(end=F("first_line") + F("line_count"))
        .filter(end__gt=lower)
        .order_by("first_line")
    )
    for batch in batches.iterator(chunk_size=50):
        for offset, raw in enumerate(batch.unpack()):
            n = batch.first_line + offset
            if lower <= n < upper:
                out.append(
                    {
                        "n": n,
                        "t": batch.times[offset],
                        "m": raw.decode("utf-8", "replace"),
                        "s": step.name,
                    }
                )
    return out
