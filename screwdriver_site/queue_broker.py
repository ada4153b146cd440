"""The embedded default's task queue: django-q2's database broker, woken rather than polled.

django-q2's database broker has each worker look for new tasks every SD_QUEUE_POLL_SECONDS
(50 ms), so a build started through the API waited half of that on average before a worker saw
its start task. Here the worker's pusher (the process that takes tasks off the queue) binds a
Unix datagram socket in the data folder, `run/queue-wake/PID.sock`, and whoever queues a task
sends every socket there an empty datagram once the task's row is written. The pusher waits on
its socket where it used to sleep, so it looks again at once.

The row stays the only truth: a wake-up carries nothing, a spurious one costs one query, and a
lost one (a full socket buffer, a worker on another host, a data folder where no socket can be
made) costs what polling always cost, since the pusher still looks every poll interval.
The folder is the data folder's, private to the server's user; builds never see it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from django import db
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from .data_dir import private_dir

logger = logging.getLogger(__name__)

WAKE_FOLDER = Path("run") / "queue-wake"
SUFFIX = ".sock"


def wake_folder() -> Path:
    return Path(settings.SD_DATA_DIR) / WAKE_FOLDER


def _short(folder_fd: int, name: str) -> str:
    # A socket's path has room for about 100 bytes; a data folder may be deeper than that.
    # The folder's open handle names it in a few.
    return f"/proc/self/fd/{folder_fd}/{name}"


def wake_workers() -> int:
    """Tell every worker on this host that a task is waiting; return how many were told."""
    try:
        folder_fd = os.open(wake_folder(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return 0  # no worker here has bound a socket: they poll
    told = 0
    try:
        names = [name for name in os.listdir(folder_fd) if name.endswith(SUFFIX)]
        if not names:
            return 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for name in names:
                with contextlib.suppress(OSError):  # gone, or its buffer is full: it polls
                    sender.sendto(b"", socket.MSG_DONTWAIT, _short(folder_fd, name))
                    told += 1
    finally:
        os.close(folder_fd)
    return told


class Waker:
    """The pusher's socket: `wait` returns at a wake-up or after `seconds`."""

    def __init__(self) -> None:
        folder = private_dir(wake_folder())
        self.path = folder / f"{os.getpid()}{SUFFIX}"
        _remove_stale(folder)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.socket.bind(_short(folder_fd, self.path.name))
        except OSError:
            self.socket.close()
            raise
        finally:
            os.close(folder_fd)

    def wait(self, seconds: float) -> None:
        # A timeout of 0 would make the socket non-blocking: a poll interval of 0 (busy
        # polling) waits a millisecond here.
        self.socket.settimeout(max(seconds, 0.001))
        try:
            self.socket.recv(1)
        except TimeoutError:
            return
        # Tasks queued together wake once: the query that follows sees them all.
        self.socket.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.socket.recv(1)

    def close(self) -> None:
        self.socket.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _remove_stale(folder: Path) -> None:
    """The sockets of pushers that died without removing theirs."""
    for path in folder.glob(f"*{SUFFIX}"):
        pid = path.name.removesuffix(SUFFIX)
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, OverflowError):
            with contextlib.suppress(OSError):
                path.unlink()
        except PermissionError:
            pass  # alive, another user's


class WakingOrmBroker(ORM):
    """django-q2's database broker that wakes the workers on this host when it queues."""

    # Class defaults: django-q2 pickles a broker into its pusher with its queue's name only.
    _waker: Waker | None = None
    _waker_pid = 0
    _waker_failed = False

    @staticmethod
    def get_connection(list_key: str | None = None) -> Any:
        # The caller's connection as it is. django-q2's broker closes it first when it is
        # past its age (for its own long-lived processes): with CONN_MAX_AGE 0, always, so a
        # request that queued a task after its commit opened another for what it read next,
        # its answer included. The pusher does that itself, below.
        return OrmQ.objects.using(Conf.ORM)

    def enqueue(self, task: Any) -> Any:
        task_id = super().enqueue(task)
        wake_workers()
        return task_id

    def dequeue(self) -> list[tuple[Any, Any]] | None:
        if transaction.get_autocommit(using=Conf.ORM):
            # A connection the database dropped, or one past its age, is not used again.
            db.close_old_connections()
        claimed = self._claim()
        if claimed:
            return claimed
        waker = self._bound()
        if waker is None:
            time.sleep(Conf.POLL)
        else:
            waker.wait(Conf.POLL)
        return None

    def _bound(self) -> Waker | None:
        # Bound by the process that dequeues (the pusher), on its first look; a process
        # forked from it binds its own rather than share (and later remove) the parent's.
        if self._waker is not None and self._waker_pid != os.getpid():
            self._waker, self._waker_failed = None, False
        if self._waker is None and not self._waker_failed:
            try:
                self._waker, self._waker_pid = Waker(), os.getpid()
            except OSError as exc:
                self._waker_failed = True
                logger.warning("Tasks are polled for: no wake-up socket could be made (%s).", exc)
        return self._waker

    def _claim(self) -> list[tuple[Any, Any]]:
        """The tasks this worker now holds: each row's lock is moved past now only if no
        other worker moved it first (django-q2's own claim, without its sleep)."""
        claimed = []
        waiting = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())
        for task in waiting[0 : Conf.BULK]:
            taken = (
                self.get_connection()
                .filter(id=task.id, lock=task.lock)
                .update(lock=self.timeout(task))
            )
            if taken:
                claimed.append((task.pk, task.payload))
        return claimed
