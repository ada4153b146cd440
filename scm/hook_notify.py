"""Post-receive hook helper: tell the Screwdriver server about a push (stdlib only).

Run by the hook script that scm.local.LocalGitScm.install_hook writes, as
``python -I hook_notify.py CONFIG_JSON`` with git's post-receive lines on stdin. It never
blocks a push for more than about DEADLINE_SECONDS and always exits 0: the push has already
happened, and the server's poller picks it up when the notification is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import urllib.error
import urllib.request
from typing import Any, TextIO

DEADLINE_SECONDS = 3.0
SIGNATURE_HEADER = "X-Screwdriver-Signature-256"


def parse_refs(lines: TextIO) -> list[dict[str, str]]:
    """Turn post-receive lines "old new ref" into the body's refs list."""
    refs = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            before, after, ref = parts
            refs.append({"before": before, "after": after, "ref": ref})
    return refs


def build_body(repository: str, refs: list[dict[str, str]]) -> bytes:
    """Return the JSON body the server expects."""
    return json.dumps({"repository": repository, "refs": refs}).encode("utf-8")


def signature(body: bytes, key: bytes) -> str:
    """Return the signature header value (same scheme as scm.signing.sign)."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, key: bytes, timeout: float) -> str:
    """POST the signed body; return "" on success or a short reason for failure."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in notify()
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "screwdriver-py-hook",
            SIGNATURE_HEADER: signature(body, key),
        },
    )
    # No proxies: local repositories live on the server's own machine, and a proxy from the
    # pusher's environment would only add a way to fail or to leak the push elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(1024)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"the server answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc)) or type(exc).__name__
    if not 200 <= status < 300:
        return f"the server answered HTTP {status}"
    return ""


def notify(config: dict[str, Any], lines: TextIO) -> str:
    """Send the notification within the deadline; return the one line to print."""
    url = str(config["notify_url"])
    if not url.startswith(("http://", "https://")):
        return f"Screwdriver: notify URL {url!r} is not http(s); polling will pick the push up."
    body = build_body(str(config["repository"]), parse_refs(lines))
    key = bytes.fromhex(str(config["key"]))

    # urlopen's timeout covers each socket operation, not name lookup or the whole exchange,
    # so a daemon thread plus join() is what actually bounds the push's wait.
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(post(url, body, key, DEADLINE_SECONDS)), daemon=True
    )
    worker.start()
    worker.join(DEADLINE_SECONDS)
    error = result[0] if result else "no answer within the time limit"
    if error:
        return (
            f"Screwdriver: could not reach the server at {url} ({error}); "
            "polling will pick the push up."
        )
    return f"Screwdriver: notified the server at {url} of this push."


def main(argv: list[str]) -> int:
    """Entry point; always returns 0 so the push never looks failed."""
    try:
        if len(argv) != 2:
            raise ValueError("usage: hook_notify.py CONFIG_JSON")
        with open(argv[1], encoding="utf-8") as handle:
            config = json.load(handle)
        message = notify(config, sys.stdin)
    except Exception as exc:  # a broken config must still not fail the push
        message = (
            f"Screwdriver: could not notify the server ({exc}); polling will pick the push up."
        )
    print(message, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
