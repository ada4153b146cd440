"""daphne, as `python -m daphne` runs it, but its access log never shows a credential.

daphne's access log writes each request's full address, query string included, so a client
that passes `?api_token=X` would leave X in the server's log. `sd_serve` (`make run`) and the
test stacks start the server with `python -m screwdriver_site.daphne_server ARGS`, which takes
daphne's own arguments.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server

from screwdriver_site.redaction import redact_query


class RedactingServer(Server):  # type: ignore[misc]
    """daphne's server, handing its access log each address with credentials redacted."""

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact_query(details["path"])}
        super().log_action(protocol, action, details)


class RedactingCommandLine(CommandLineInterface):  # type: ignore[misc]
    server_class = RedactingServer


def main(argv: list[str]) -> None:
    # The access log goes to stdout: a line as each request ends, not a block now and then.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    RedactingCommandLine().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
