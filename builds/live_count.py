"""How many build pages follow a build live, counted over every server process.

A page's WebSocket is held by one ASGI process, and production runs several (docs/scaling.md),
so no one process can count them. Each process keeps its own count and writes it to its row
of `LiveCount` when a page opens or closes, and every SD_LIVE_HEARTBEAT_SECONDS while it holds
any; `/metrics` sums the rows written within three heartbeats (`live_connections`). A process
that dies with pages open stops counting when its row goes stale; rows of processes gone for
a day are deleted by the next write.

Opening and closing pages costs a signed-in client nothing, so a process writes at most once
every MIN_WRITE_SECONDS: changes that come sooner are written together, a moment later, with
the count as it is then. Many sockets opened at once never queue writes for the database's
one writer (SQLite).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from builds.models import LiveCount

# Rows not written for this long are of processes long gone.
FORGOTTEN = timedelta(days=1)
# The least time between two writes of a process's count; a burst of changes waits this long.
MIN_WRITE_SECONDS = 1.0


def stale_after() -> timedelta:
    """How long a row counts after its process last wrote it: three missed heartbeats."""
    return timedelta(seconds=3 * settings.SD_LIVE_HEARTBEAT_SECONDS)


def live_connections(now: datetime) -> int:
    """Build pages following a build live, summed over the processes that wrote recently."""
    found = LiveCount.objects.filter(seen_at__gte=now - stale_after()).aggregate(
        n=Sum("connections")
    )
    return int(found["n"] or 0)


class ProcessCount:
    """This process's count of open build pages, and the heartbeat that keeps its row fresh."""

    def __init__(self) -> None:
        self.open = 0
        self._key: tuple[int, str] | None = None
        self._beat: asyncio.Task[None] | None = None
        # The event loop's time of the last write begun, and the write waiting to follow it.
        self._written_at = float("-inf")
        self._later: asyncio.Task[None] | None = None

    def key(self) -> str:
        # Made in the process that counts: a fork gets a row of its own.
        if self._key is None or self._key[0] != os.getpid():
            self._key = (
                os.getpid(),
                f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}",
            )
        return self._key[1]

    async def opened(self) -> None:
        self.open += 1
        await self._changed()
        self._keep_beating()

    async def closed(self) -> None:
        self.open = max(self.open - 1, 0)
        await self._changed()

    async def _changed(self) -> None:
        """Write the count now, or once MIN_WRITE_SECONDS have passed since the last write."""
        loop = asyncio.get_running_loop()
        if self._later is not None and not self._later.done() and self._later.get_loop() is loop:
            return  # the write already waiting takes the count as it is when it runs
        wait = self._written_at + MIN_WRITE_SECONDS - loop.time()
        if wait > 0:
            self._later = loop.create_task(self._save_after(wait))
            return
        await self._save_now()

    async def _save_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._save_now()

    async def _save_now(self) -> None:
        # Marked before the write: changes during it wait for the next one.
        self._written_at = asyncio.get_running_loop().time()
        await self.save()

    @database_sync_to_async
    def save(self) -> None:
        # Every write runs in the one thread for database work, in order, and writes the count
        # as it is then: the last write always holds the latest count.
        now = timezone.now()
        LiveCount.objects.update_or_create(
            process=self.key(), defaults={"connections": self.open, "seen_at": now}
        )
        LiveCount.objects.filter(seen_at__lt=now - FORGOTTEN).delete()

    def _keep_beating(self) -> None:
        loop = asyncio.get_running_loop()
        if self._beat is None or self._beat.done() or self._beat.get_loop() is not loop:
            self._beat = loop.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while self.open > 0:
            await asyncio.sleep(settings.SD_LIVE_HEARTBEAT_SECONDS)
            await self._save_now()


# The count of this process: the build page's consumer reports to it.
PROCESS_COUNT = ProcessCount()
