"""Run the real thing for a browser: daphne (HTTP and WebSockets) plus a django-q2 worker.

pytest-django's live server speaks WSGI only, so it has no WebSockets; the browser tests,
the screenshots and the live-log benchmark start this instead, against the database they name.
Builds report to this server, so the lines they print reach the page through its channel layer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveStack:
    """The ASGI server and a worker as child processes; `stop()` ends both and their builds."""

    url: str
    port: int
    data_dir: Path
    env: dict[str, str]
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        database_url: str,
        data_dir: Path,
        secret_key: str,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        worker: bool = True,
    ) -> LiveStack:
        """Start the server (and the worker) and wait until the server answers."""
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(data_dir)),
            "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings",
            "DATABASE_URL": database_url,
            "SD_DATA_DIR": str(data_dir),
            "SD_SECRET_KEY": secret_key,
            "SD_API_URL": url,
            "SD_UI_URL": url,
            "PORT": str(port),
            "SD_QUEUE_POLL_SECONDS": "0.05",
            "SD_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        stack = cls(url=url, port=port, data_dir=data_dir, env=env)
        stack.start_server()
        if worker:
            stack.start_worker()
        return stack

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.data_dir / f"{name}.log"
        self.logs.append(log_path)
        log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_server(self, timeout: float = 30) -> None:
        """Start daphne on this stack's port and wait until /v4/status answers."""
        self.server = self._spawn(
            "server",
            [
                sys.executable,
                "-m",
                # daphne, with credentials in query strings kept out of its access log
                "screwdriver_site.daphne_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "screwdriver_site.asgi:application",
            ],
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v4/status", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: see {self.data_dir / 'server.log'}")
            time.sleep(0.1)

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", [sys.executable, "manage.py", "qcluster"])

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_server(self) -> None:
        self._end(self.server)

    def stop(self) -> None:
        """End the worker, the server and any build process left in this stack's data dir."""
        self._end(self.worker)
        self._end(self.server)
        self.kill_leftovers()

    def kill_leftovers(self) -> None:
        marker = str(self.data_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue
