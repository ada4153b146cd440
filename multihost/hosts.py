"""Hosts for the multi-host test: network namespaces on one bridge, and what runs in them.

Each host is a network namespace (`sdmh-NAME`) with one end of a veth pair as its `eth0` and
an address on 10.231.77.0/24. The other ends sit on a bridge in a namespace of its own, the
switch (`sdmh-switch`): a bridge in the root namespace would pass the hosts' frames through
the machine's firewall, and Docker's drops forwarded traffic. One more veth pair joins the
root namespace to the switch; its root end holds 10.231.77.1, where forwarders
(multihost/forwarder.py) carry PostgreSQL and Redis, which listen on the machine's loopback.

All of it needs root. `clean_leftovers` removes what an earlier run that crashed left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "sdmh"
SWITCH = f"{PREFIX}-switch"
BRIDGE = f"{PREFIX}-br"
UPLINK = f"{PREFIX}-up"
SUBNET = "10.231.77"
GATEWAY = f"{SUBNET}.1"
STATE = Path("/tmp") / f"{PREFIX}-state.json"  # noqa: S108 (root's own record of a run)


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def why_not_runnable() -> str:
    """Why this machine cannot run the test, or an empty string when it can."""
    if sys.platform != "linux":
        return "it needs Linux network namespaces"
    if os.geteuid() != 0:
        return "it needs root to create network namespaces (run it as root, as CI does)"
    if shutil.which("ip") is None:
        return "it needs iproute2's `ip` (apt-get install iproute2)"
    probe = f"{PREFIX}-probe"
    ip("netns", "del", probe, check=False)
    try:
        ip("netns", "add", probe)
    except RuntimeError as exc:
        return f"`ip netns add` does not work here: {exc}"
    ip("netns", "del", probe, check=False)
    return ""


def netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def kill_netns(netns: str) -> int:
    """SIGKILL every process in the namespace, as a host losing its power; how many."""
    killed = 0
    for _ in range(5):
        pids = netns_pids(netns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.1)
    return killed


@dataclass
class Host:
    """One machine: a network namespace, an address, a data folder, its processes."""

    name: str
    address: str
    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def create(self) -> None:
        ip("netns", "add", self.netns)
        ip("link", "add", self.netns, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("link", "set", self.netns, "netns", SWITCH)
        ip("-n", SWITCH, "link", "set", self.netns, "master", BRIDGE)
        ip("-n", SWITCH, "link", "set", self.netns, "up")
        ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("-n", self.netns, "route", "add", "default", "via", GATEWAY)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def run(self, argv: list[str], env: dict[str, str], log_name: str) -> None:
        """Start `argv` in this host's namespace, its output in ROOT/LOG_NAME."""
        with open(self.root / log_name, "ab") as log:
            self.processes.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", self.netns, *argv],
                    cwd=REPO,
                    env={
                        **env,
                        "SD_DATA_DIR": str(self.data_dir),
                        "SD_HOSTNAME": self.name,
                        "HOME": str(self.root),
                    },
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def launcher_builds(self) -> set[int]:
        """The builds whose launcher runs on this host now."""
        found = set()
        for pid in netns_pids(self.netns):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.startswith(b"executors.launcher") for arg in argv) and b"--build-id" in argv:
                value = argv[argv.index(b"--build-id") + 1]
                if value.isdigit():
                    found.add(int(value))
        return found

    def power_off(self) -> int:
        killed = kill_netns(self.netns)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return killed

    def destroy(self) -> None:
        self.power_off()
        ip("netns", "del", self.netns, check=False)


def create_switch() -> None:
    """The switch namespace and its bridge, joined to the root namespace at GATEWAY."""
    ip("netns", "add", SWITCH)
    ip("-n", SWITCH, "link", "add", BRIDGE, "type", "bridge")
    ip("-n", SWITCH, "link", "set", BRIDGE, "up")
    ip("link", "add", UPLINK, "type", "veth", "peer", "name", "uplink", "netns", SWITCH)
    ip("-n", SWITCH, "link", "set", "uplink", "master", BRIDGE)
    ip("-n", SWITCH, "link", "set", "uplink", "up")
    ip("addr", "add", f"{GATEWAY}/24", "dev", UPLINK)
    ip("link", "set", UPLINK, "up")


def destroy_switch() -> None:
    # The veths inside it go with it, and so do their other ends.
    ip("netns", "del", SWITCH, check=False)
    ip("link", "del", UPLINK, check=False)


def start_forwarders(log: Path, ports: list[int]) -> subprocess.Popen[bytes]:
    pairs = [f"{GATEWAY}:{port}=127.0.0.1:{port}" for port in ports]
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "multihost.forwarder", *pairs],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"the forwarders did not start; see {log}")
    remember(forwarder=proc.pid)
    return proc


def remember(**facts: object) -> None:
    """Note what a crashed run would leave behind (the forwarder's pid, the database)."""
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    state.update(facts)
    STATE.write_text(json.dumps(state))


def clean_leftovers(drop_database: object) -> None:
    """Remove the namespaces, links, forwarder and database an earlier run left."""
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-"):
            kill_netns(name)
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(f"{PREFIX}-"):
                ip("link", "del", name, check=False)
    if not STATE.exists():
        return
    state = json.loads(STATE.read_text())
    pid = state.get("forwarder")
    if isinstance(pid, int):
        with contextlib.suppress(OSError):
            if b"multihost.forwarder" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    if state.get("database"):
        assert callable(drop_database)
        drop_database(state["database"])
    STATE.unlink(missing_ok=True)
