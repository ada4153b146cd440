"""Command line: `python -m executors.launcher --api-url URL --build-id N --workspace DIR`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .launch import run_build
from .sandbox import Sandbox


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The launcher's options (the token comes from SD_LAUNCHER_TOKEN, never argv)."""
    parser = argparse.ArgumentParser(prog="python -m executors.launcher")
    parser.add_argument("--api-url", required=True, help="the API root, e.g. http://host:8000")
    parser.add_argument("--build-id", required=True, type=int)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument(
        "--detach",
        action="store_true",
        help="run in the background in a new session; print its pid (also its group id)",
    )
    parser.add_argument(
        "--agent",
        type=Path,
        help="run user steps in a build container through the agent listening in this directory",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the build container's agent (image pulls count)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run user steps in a bubblewrap sandbox that sees only the workspace",
    )
    parser.add_argument(
        "--hide",
        type=Path,
        action="append",
        default=[],
        help="with --sandbox: a folder the steps must not see (repeatable)",
    )
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="with --sandbox: give the steps a network of their own with nothing in it",
    )
    parser.add_argument(
        "--build-user",
        type=_ids,
        help="with --sandbox: UID:GID to run the steps as (for a launcher run by root)",
    )
    return parser.parse_args(argv)


def _ids(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError("expected UID:GID, two numbers")
    return int(uid), int(gid)


def detach() -> None:
    """Double-fork; the original process prints the final child's pid and exits 0.

    The grandchild calls setsid(), so its pid is its session and process-group id, and it is
    not a child of the caller, who therefore never has to wait for it. It keeps stderr (the
    executor points that at a file) and sends stdout there too: stdout carried the pid.
    """
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            pid = pipe.read().decode().strip()
        os.waitpid(first, 0)
        if not pid.isdigit():
            sys.stderr.write("launcher: the detached launcher did not start\n")
            os._exit(1)
        sys.stdout.write(pid + "\n")
        sys.stdout.flush()
        os._exit(0)
    os.close(read_fd)
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    os.dup2(2, 1)
    os.write(write_fd, str(os.getpid()).encode())
    os.close(write_fd)


def main(argv: list[str] | None = None) -> int:
    """Run the launcher; return its exit status."""
    started = time.monotonic()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    token = os.environ.get("SD_LAUNCHER_TOKEN", "")
    if not token:
        sys.stderr.write("launcher: set SD_LAUNCHER_TOKEN to the build token\n")
        return 2
    if args.sandbox and args.agent:
        sys.stderr.write("launcher: --sandbox starts its own agent; give it without --agent\n")
        return 2
    workspace = args.workspace.resolve()
    if args.detach:
        detach()
    return run_build(
        api_url=args.api_url,
        build_id=args.build_id,
        workspace_dir=workspace,
        token=token,
        started=started,
        agent_dir=args.agent.resolve() if args.agent else None,
        agent_timeout=args.agent_timeout,
        sandbox=Sandbox(
            workspace, hide=args.hide, user=args.build_user, network=not args.no_network
        )
        if args.sandbox
        else None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
