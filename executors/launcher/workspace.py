"""The directory layout of one build's workspace."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import meta, metaserver


@dataclass(frozen=True)
class Workspace:
    """Where a build's source, artifacts, meta, `meta` command and shell state live."""

    root: Path
    checkout_name: str = "src"

    @staticmethod
    def safe_name(name: str | None) -> str:
        """A checkout name that stays one directory below `src/` whatever the server sent."""
        cleaned = Path(name or "").name
        return cleaned if cleaned not in ("", ".", "..") else "src"

    @property
    def source(self) -> Path:
        """The checkout: SD_SOURCE_DIR and the first step's working directory."""
        return self.root / "src" / self.checkout_name

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

    def prepare(self, initial_meta: dict[str, Any], agent_dir: Path | None = None) -> None:
        """Create the directories, the meta file and the `meta` command.

        With `agent_dir` the steps run in a container that may have no Python, so `meta` is the
        shell client that the launcher answers through that directory.
        """
        for directory in (self.source.parent, self.artifacts, self.meta_dir, self.bin):
            directory.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.meta_path.write_text(json.dumps(initial_meta, ensure_ascii=False), encoding="utf-8")
        if agent_dir is None:
            meta.install(self.bin)
        else:
            metaserver.install(self.bin, agent_dir)

    def variables(self, token: str) -> dict[str, str]:
        """The SD_* variables that depend on where the launcher runs."""
        return {
            "SD_ROOT_DIR": str(self.root),
            "SD_SOURCE_DIR": str(self.source),
            "SD_CHECKOUT_DIR": str(self.source),
            "SD_ARTIFACTS_DIR": str(self.artifacts),
            "SD_META_DIR": str(self.meta_dir),
            "SD_META_PATH": str(self.meta_path),
            "SD_TOKEN": token,
        }

    def read_meta(self) -> dict[str, Any]:
        """The meta as the steps left it."""
        return meta.load(self.meta_path)
