"""A throwaway Screwdriver for tools: its own SQLite database, git repositories and people.

`configure()` must run before Django is imported anywhere: it points the settings at a fresh
data directory, then sets Django up and migrates.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
GIT = ["git", "-c", "user.name=Dana Developer", "-c", "user.email=dana@example.com"]


def configure(data_dir: Path) -> dict[str, str]:
    """Use a fresh SQLite database under `data_dir`; return what child processes need."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "SD_DATA_DIR": str(data_dir),
        "SD_SECRET_KEY": secrets.token_urlsafe(40),
        "SD_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "screwdriver_site.settings",
    }
    os.environ.update(env)
    # Tools call the ORM between Playwright's sync calls, whose event loop runs in this thread;
    # nothing here is async code, so Django's guard against it does not apply.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return env


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    out = subprocess.run(
        [*GIT, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


def make_repo(root: Path, name: str, files: dict[str, str], message: str) -> Path:
    """A bare repository whose main branch holds `files` in one commit."""
    bare, work = root / f"{name}.git", root / f"{name}-work"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("clone", "-q", str(bare), str(work), cwd=root)
    push(work, files, message)
    return bare


def push(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)
