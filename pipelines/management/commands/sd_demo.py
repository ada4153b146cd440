"""`sd_demo`: an admin account and a demo pipeline whose first event runs at once."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from pipelines.models import Pipeline
from pipelines.services import Creator, create_pipeline, start_event
from screwdriver_site.data_dir import private_file

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "demo" / "screwdriver.yaml"
GIT_IDENTITY = ["-c", "user.name=Screwdriver Demo", "-c", "user.email=demo@localhost"]


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, timeout=60
    )


class Command(BaseCommand):
    help = "Create the admin account and the demo pipeline (once), and start its first event."

    def handle(self, *args: Any, **options: Any) -> None:
        data = Path(settings.SD_DATA_DIR)
        user = self._admin(data)
        repo = data / "demo" / "demo.git"
        if not settings.SD_DEMO:
            return
        if Pipeline.objects.filter(name__endswith="/demo").exists():
            self.stdout.write(f"Demo pipeline ready; its repository is {repo}")
            return
        if not repo.exists():
            self._make_repo(repo)
        pipeline = create_pipeline(checkout_url=f"{repo}#main", user=user)
        start_event(
            pipeline=pipeline,
            start_from="~commit",
            creator=Creator(name="Screwdriver", username=user.get_username()),
            cause_message="The demo's first run",
        )
        self.stdout.write(
            f"Created the demo pipeline {pipeline.pk} from {repo}; its first event is queued."
        )

    def _admin(self, data: Path) -> Any:
        users = get_user_model()
        user = users.objects.filter(username="admin").first()
        if user is not None:
            return user
        password_file = data / "admin-password"
        password = secrets.token_urlsafe(12)
        user = users.objects.create_superuser(username="admin", password=password, email="")
        password_file.unlink(missing_ok=True)
        private_file(password_file, password + "\n")
        self.stdout.write(f"Sign in as admin / {password}  (also saved in {password_file})")
        return user

    def _make_repo(self, repo: Path) -> None:
        repo.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--bare", "--initial-branch=main", str(repo)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _git("clone", "-q", str(repo), "work", cwd=work)
            shutil.copy(DEMO_CONFIG, work / "work" / "screwdriver.yaml")
            (work / "work" / "README.md").write_text("# Demo\n\nEdit screwdriver.yaml and push.\n")
            _git("add", ".", cwd=work / "work")
            _git("commit", "-q", "-m", "Add the demo pipeline", cwd=work / "work")
            _git("push", "-q", "origin", "HEAD:main", cwd=work / "work")
