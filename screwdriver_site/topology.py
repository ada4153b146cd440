"""Whether a worker's settings let it run on a host of its own (docs/scaling.md).

A worker on another host than the API shares three things with it: the database (a server,
not a SQLite file), the secret key (build tokens the worker signs are checked by the API) and
the API's address, which the launchers it starts report to. A loopback address there is this
worker's own host, where no API listens.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class WorkerCheck:
    """What stops a worker from starting (`errors`) and what it should say at start."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_local_address(host: str) -> bool:
    """Whether `host` names the machine it is read on: localhost, a loopback or 0.0.0.0."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_worker(
    *,
    remote: bool,
    api_url: str,
    database_engine: str,
    secret_key_set: bool,
    redis_url: str,
) -> WorkerCheck:
    """The rules in the module's docstring, for a worker started with these settings.

    `remote` is SD_WORKER_REMOTE: the operator says this worker runs on a host of its own.
    Without it, a worker whose database is a server (so it may well be elsewhere) and whose
    API address is a loopback one is warned, not stopped: one host running everything is fine.
    """
    errors: list[str] = []
    warnings: list[str] = []
    parts = urlsplit(api_url)
    sqlite = database_engine.endswith("sqlite3")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(
            f"SD_API_URL {api_url!r} is not an http(s) URL: set it to the address the API "
            "listens on, as this host reaches it."
        )
    elif is_local_address(parts.hostname):
        if remote:
            errors.append(
                f"SD_API_URL is {api_url}, a loopback address: on a worker host that is the "
                "worker itself, and its builds could not report. Set SD_API_URL to the API's "
                "address as this host reaches it (e.g. http://api.internal:8000)."
            )
        elif not sqlite:
            warnings.append(
                f"SD_API_URL is {api_url}, a loopback address: builds this worker starts "
                "report there, so it must run on the API's host. On a host of its own, set "
                "SD_API_URL to the API's address and SD_WORKER_REMOTE=true."
            )
    if remote:
        if sqlite:
            errors.append(
                "DATABASE_URL is a SQLite file, which other hosts cannot share: point every "
                "host at the same PostgreSQL or MySQL server."
            )
        if not secret_key_set:
            errors.append(
                "SD_SECRET_KEY is not set: a worker on a host of its own needs the API's key "
                "(the API checks the build tokens this worker signs with it)."
            )
        if not redis_url:
            warnings.append(
                "SD_REDIS_URL is not set: tasks go through the database, and the status "
                "changes this worker makes reach open pages only when they reload."
            )
    return WorkerCheck(errors=errors, warnings=warnings)
