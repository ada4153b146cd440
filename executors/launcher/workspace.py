"""The directory layout of one build's workspace."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from . import meta, metaserver, sd_cmd, template_commands
from .confined import Confined


@dataclass(frozen=True)
class Workspace:
    """Where a build's source, artifacts, meta, `meta` command and shell state live."""

    root: Path
    checkout_name: str = "src"
    # The pipeline's folder of the repository (Screwdriver's rootDir), "" for its top.
    source_dir: str = ""

    @staticmethod
    def safe_name(name: str | None) -> str:
        """A checkout name that stays one directory below `src/` whatever the server sent."""
        cleaned = Path(name or "").name
        return cleaned if cleaned not in ("", ".", "..") else "src"

    @staticmethod
    def safe_source_dir(path: str | None) -> str:
        """The pipeline's folder as a path below the checkout; ValueError for anything else.

        The server checked it when the pipeline was saved; a spec that says otherwise is
        refused rather than let a build start outside its checkout.
        """
        cleaned = (path or "").rstrip("/")
        parts = cleaned.split("/")
        if cleaned and (
            cleaned.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
            or any(ord(c) < 32 or c == "\x7f" for c in cleaned)
        ):
            raise ValueError(f"the source directory {path!r} is not a folder of the repository")
        return cleaned

    @property
    def checkout(self) -> Path:
        """Where the repository is cloned: SD_CHECKOUT_DIR."""
        return self.root / "src" / self.checkout_name

    @property
    def source(self) -> Path:
        """The pipeline's folder of the checkout: SD_SOURCE_DIR, where the first step starts."""
        return self.checkout / self.source_dir if self.source_dir else self.checkout

    @property
    def config(self) -> Path:
        """Where a child pipeline's build finds its parent's repository: SD_CONFIG_DIR."""
        return self.root / "config"

    @property
    def artifacts(self) -> Path:
        """SD_ARTIFACTS_DIR."""
        return self.root / "artifacts"

    @property
    def meta_dir(self) -> Path:
        """SD_META_DIR."""
        return self.root / "meta"

    @property
    def meta_path(self) -> Path:
        """SD_META_PATH."""
        return self.meta_dir / "meta.json"

    @property
    def bin(self) -> Path:
        """Prepended to PATH; holds the `meta` command."""
        return self.root / "bin"

    @property
    def state(self) -> Path:
        """Private: environment dumps, working directories, step scripts (may hold secrets)."""
        return self.root / ".launcher"

    @cached_property
    def tree(self) -> Confined:
        """The workspace as the launcher must touch it once steps run: never through a link.

        Steps (root in a container) may replace any file here with a link to a file of the
        machine the launcher runs on; see confined.py.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        return Confined(self.root)

    def prepare(self, initial_meta: dict[str, Any], agent_dir: Path | None = None) -> None:
        """Create the directories, the meta file and the `meta` command.

        With `agent_dir` the steps run in a container that may have no Python, so `meta` is the
        shell client that the launcher answers through that directory.
        """
        for directory in (self.checkout.parent, self.artifacts, self.meta_dir, self.bin):
            with self.tree.directory(directory, create=True):
                pass
        with self.tree.directory(self.state, create=True) as state:
            os.fchmod(state, 0o700)
        text = json.dumps(initial_meta, ensure_ascii=False)
        self.tree.write(self.meta_path, text.encode("utf-8"), 0o644)
        if agent_dir is None:
            # No step has run yet and none runs in a container that started before us.
            meta.install(self.bin)
            template_commands.install(self.bin)
            sd_cmd.install(self.bin)
        else:
            client = metaserver.client(agent_dir)
            self.tree.write(self.bin / "meta", client, 0o755)
            for command in template_commands.COMMANDS:
                text = template_commands.shell_client(command, client.decode("utf-8"))
                self.tree.write(self.bin / command, text.encode("utf-8"), 0o755)
            text = sd_cmd.shell_client(client.decode("utf-8"))
            self.tree.write(self.bin / sd_cmd.COMMAND, text.encode("utf-8"), 0o755)

    def write_private(self, path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
        """Write a file of the workspace that only its owner may read (it may hold secrets)."""
        self.tree.write(path, text.encode("utf-8", "surrogateescape"), 0o600, owner)

    def variables(self, token: str, *, config: bool = False) -> dict[str, str]:
        """The SD_* variables that depend on where the launcher runs; SD_CONFIG_DIR only for
        a child pipeline's build, which gets its parent's repository there."""
        extra = {"SD_CONFIG_DIR": str(self.config)} if config else {}
        return {
            **extra,
            "SD_ROOT_DIR": str(self.root),
            "SD_SOURCE_DIR": str(self.source),
            "SD_CHECKOUT_DIR": str(self.checkout),
            "SD_ARTIFACTS_DIR": str(self.artifacts),
            "SD_META_DIR": str(self.meta_dir),
            "SD_META_PATH": str(self.meta_path),
            "SD_TOKEN": token,
        }

    def read_meta(self) -> dict[str, Any]:
        """The meta as the steps left it (a link in place of meta.json is refused)."""
        with self.tree.directory(self.meta_dir) as meta_dir:
            return meta.load(self.meta_path, meta_dir)
