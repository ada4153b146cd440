"""A zip archive written as it is sent: no temporary file, no archive in memory.

The standard library's zipfile writes to a stream it cannot seek by putting each member's
sizes and CRC in a data descriptor after its bytes; this module hands out what it wrote after
every chunk, so the archive leaves the server as fast as its members are read. Members of
2 GiB or more, and archives past 4 GiB, get zip64 records.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ZipMember:
    """One file of the archive: its name in it, its size, and how to read its bytes.

    `chunks` is called only when the member's turn comes; a FileNotFoundError from it or its
    first chunk leaves the member out of the archive.
    """

    name: str
    size: int
    modified: datetime
    chunks: Callable[[], Iterable[bytes]]
    compress: bool = False


class _Spout:
    """The write end zipfile sees: it keeps what was written until the generator takes it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_stream(members: Iterable[ZipMember]) -> Iterator[bytes]:
    """The bytes of a zip archive of `members`, in order, as they are written."""
    return (part for part in _parts(members) if part)


def _parts(members: Iterable[ZipMember]) -> Iterator[bytes]:
    spout = _Spout()
    with zipfile.ZipFile(spout, mode="w", allowZip64=True) as archive:
        for member in members:
            try:
                chunks = iter(member.chunks())
                first = next(chunks, b"")
            except FileNotFoundError:
                continue
            info = zipfile.ZipInfo(member.name, date_time=_zip_time(member.modified))
            info.compress_type = zipfile.ZIP_DEFLATED if member.compress else zipfile.ZIP_STORED
            info.file_size = member.size  # decides whether the member needs zip64 records
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w") as target:
                target.write(first)
                yield spout.take()
                for chunk in chunks:
                    target.write(chunk)
                    yield spout.take()
            yield spout.take()
    yield spout.take()


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    # A zip time is local calendar time from 1980 to 2107, to two seconds.
    year = min(max(moment.year, 1980), 2107)
    return (year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
