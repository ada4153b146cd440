"""Responses that stream stored bytes: chunk by chunk under WSGI and ASGI, one byte range.

Django serves a StreamingHttpResponse built on a plain iterator under ASGI by reading the
whole iterator into a list first; `ChunkedResponse` pulls one chunk at a time instead, so a
download costs the server one chunk of memory whichever way the server runs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class ChunkedResponse(StreamingHttpResponse):
    """A StreamingHttpResponse of a plain iterator that ASGI servers also stream chunk by chunk.

    `reads_database`: the iterator queries the database (a log read page by page), so each
    chunk is read in the request's own thread, whose connection Django closes when the
    response ends; otherwise (storage reads) any thread will do.
    """

    def __init__(self, *args: Any, reads_database: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads_database = reads_database

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        chunks = iter(self.streaming_content)  # type: ignore[arg-type]

        def pull() -> bytes | None:
            return next(chunks, None)

        pull_elsewhere = sync_to_async(pull, thread_sensitive=self.reads_database)
        while (chunk := await pull_elsewhere()) is not None:
            yield chunk


class Primed(Iterator[bytes]):
    """`chunks`, with the first one read at once: a missing file fails before a header is sent.

    Closing it closes the chunks' generator, so a download cut short releases its file or its
    S3 connection then, not when the garbage is collected.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._rest = iter(chunks)
        self._first = next(self._rest, None)

    def __next__(self) -> bytes:
        if self._first is None:
            return next(self._rest)
        chunk, self._first = self._first, None
        return chunk

    def close(self) -> None:
        self._first = None
        close = getattr(self._rest, "close", None)
        if close is None:
            return
        # A read still running in a worker thread (a client gone mid-chunk) ends on its own.
        with contextlib.suppress(ValueError):
            close()


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` up to `end` (exclusive) of a representation of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class RangeNotSatisfiable(Exception):
    """A Range header none of whose bytes exist (HTTP 416)."""


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a Range header asks for, or None for the whole representation.

    As RFC 9110 allows, a header this server does not understand (another unit, a syntax error,
    several ranges) is ignored and the whole representation is sent. A well-formed range that
    starts past the end, or a suffix of zero bytes, raises RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    end = size if last == "" else min(size, int(last) + 1)
    return ByteRange(start, end, size)


def etag_in(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weakly compared, as that header is)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))
