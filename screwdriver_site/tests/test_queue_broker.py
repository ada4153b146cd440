"""The database broker wakes the workers on this host: a queued task is taken at once.

Against a real `manage.py sd_worker` polling only every 30 seconds: without the wake-up, a
task would wait up to that long; with it, the worker has it within a second or two.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django_q.models import Task
from django_q.tasks import async_task

from conftest import Stack, wait_until
from screwdriver_site import queue_broker
from screwdriver_site.queue_broker import SUFFIX, Waker, wake_folder, wake_workers


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"SD_QUEUE_POLL_SECONDS": "30"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_polling_every_30_seconds_takes_a_queued_task_at_once(stack: Stack) -> None:
    folder = stack.data_dir / queue_broker.WAKE_FOLDER
    # The pusher binds its socket on its first look at the queue, then waits on it.
    wait_until(lambda: list(folder.glob(f"*{SUFFIX}")), timeout=60, what="the worker's socket")
    time.sleep(0.5)

    for number in (16.0, 25.0):
        queued = time.monotonic()
        task_id = async_task("math.sqrt", number)
        done = wait_until(
            lambda: Task.objects.filter(id=task_id).first(),  # noqa: B023
            timeout=25,
            interval=0.02,
            what="the worker to run the task",
        )
        taken = time.monotonic() - queued
        assert done.success and done.result == number**0.5
        assert taken < 5, f"the task waited {taken:.1f}s: the worker was not woken"


def test_wake_up_reaches_a_waiting_pusher_and_a_quiet_one_waits_its_time(
    settings: Any, tmp_path: Path
) -> None:
    settings.SD_DATA_DIR = tmp_path
    assert wake_workers() == 0  # no worker here: nothing to tell, no error

    waker = Waker()
    try:
        started = time.monotonic()
        waker.wait(0.2)
        assert time.monotonic() - started >= 0.19
        waker.wait(0)  # SD_QUEUE_POLL_SECONDS=0: a busy poll, not an error

        threading.Timer(0.1, wake_workers).start()
        started = time.monotonic()
        waker.wait(10)
        assert time.monotonic() - started < 5

        # Several wake-ups while it was busy wake it once.
        assert wake_workers() == 1 and wake_workers() == 1
        waker.wait(10)
        started = time.monotonic()
        waker.wait(0.2)
        assert time.monotonic() - started >= 0.19
    finally:
        waker.close()
    assert not list(wake_folder().iterdir())


def test_a_deep_data_folder_and_a_dead_workers_socket(settings: Any, tmp_path: Path) -> None:
    # Deeper than a socket's path may be (about 100 bytes).
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    settings.SD_DATA_DIR = deep
    folder = wake_folder()
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    stale = folder / f"{int(dead.stdout)}{SUFFIX}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as orphan:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        orphan.bind(f"/proc/self/fd/{handle}/{stale.name}")
        os.close(handle)
    assert wake_workers() == 0  # its file is still there, but nobody listens
    (folder / f"{'9' * 30}{SUFFIX}").touch()  # no pid can be this large

    waker = Waker()
    try:
        assert not stale.exists()  # a new pusher clears the sockets of dead ones
        assert not (folder / f"{'9' * 30}{SUFFIX}").exists()
        assert waker.path.exists() and oct(folder.stat().st_mode & 0o777) == "0o700"
        assert wake_workers() == 1
        started = time.monotonic()
        waker.wait(10)
        assert time.monotonic() - started < 5
    finally:
        waker.close()


@pytest.mark.django_db(transaction=True)
def test_queuing_a_task_keeps_the_callers_database_connection() -> None:
    from django.db import connection

    connection.ensure_connection()
    before = connection.connection
    async_task("math.sqrt", 4.0)
    # django-q2's own broker closes it first: a request would open another for its answer.
    assert connection.connection is before
