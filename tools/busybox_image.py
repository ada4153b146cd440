"""Build a `FROM scratch` image holding only a static busybox: /bin/sh, no Python, no git.

Tests and benchmarks of the Docker executor use it so nothing is ever pulled from a registry.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")


def build_busybox_image(engine: Any, tag: str, *, env: str = "PATH=/bin") -> str:
    """Build `tag` from the host's static busybox with every applet linked; return the tag."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM scratch\nCOPY rootfs/ /\nENV {env}\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(str(BUSYBOX), arcname="rootfs/bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"rootfs/bin/{applet}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
        for directory in ("tmp", "root", "etc"):
            entry = tarfile.TarInfo(f"rootfs/{directory}")
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(entry)
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False)
    return tag
