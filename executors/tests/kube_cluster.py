"""A fake Kubernetes cluster for the executor's tests: an API server, and a kubelet that runs pods.

The API server is a real HTTP server on 127.0.0.1 that records every request, keeps the pods
and secrets it is given, filters lists by label selector, and answers with the pod statuses and
logs a test sets. Given a `Kubelet`, it also runs every pod it is given, the way a node would:

- each `emptyDir` volume is a fresh folder (0777, group `fsGroup` with the set-group-id bit, as
  the kubelet makes it), mounted at each container's `mountPath`;
- init containers run one after the other, then the containers all at once; a container's
  `env` includes `secretKeyRef` values from the Secrets this server holds;
- a container of the launcher image runs as a process of this checkout's Python in bubblewrap
  (`bwrap --dev-bind / / --bind EMPTYDIR MOUNTPATH`, so the pod's absolute paths hold), as the
  pod's `runAsUser`; this machine's files stand in for the image's, so it may read them
  whatever their owner (CAP_DAC_READ_SEARCH), as an image's own files would be readable;
- any other image runs on the real Docker engine, never pulled, with the emptyDir bind-mounted,
  as the pod's `runAsUser` and `fsGroup`, in the host's network (a pod's containers share one);
- the pod's phase, its containers' states and exit codes, and their logs come from what ran;
  `activeDeadlineSeconds` fails a pod with `DeadlineExceeded`;
- a delete with a grace sends SIGTERM to every container's main process, SIGKILL to what is
  left after the grace, and only then removes the pod; a delete without one (or of a pod no
  node runs) removes it at once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
KUBELET_LABEL = "sd-test.fake-kubelet/pod"
# How often the kubelet looks at its containers.
TICK_SECONDS = 0.05


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeCluster:
    """What the fake API server holds and what it was asked."""

    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    refuse: int = 0
    url: str = ""
    kubelet: Kubelet | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def calls(self, method: str) -> list[tuple[str, dict[str, list[str]], Any]]:
        return [(p, q, b) for m, p, q, b in self.requests if m == method]

    def secret_value(self, name: str, key: str) -> str | None:
        """A Secret's value as a container's `secretKeyRef` gets it."""
        with self.lock:
            secret = self.secrets.get(name)
        if secret is None:
            return None
        if key in (secret.get("stringData") or {}):
            return str(secret["stringData"][key])
        data = (secret.get("data") or {}).get(key)
        return base64.b64decode(data).decode() if data is not None else None


def _handler(cluster: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> tuple[list[str], dict[str, list[str]], Any]:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            query = parse_qs(parts.query)
            with cluster.lock:
                cluster.requests.append((self.command, parts.path, query, body))
            return parts.path.strip("/").split("/"), query, body

        def _missing(self) -> None:
            self._answer(404, {"kind": "Status", "status": "Failure", "code": 404})

        def do_POST(self) -> None:
            path, _query, body = self._record()
            if cluster.refuse:
                self._answer(cluster.refuse, {"kind": "Status", "code": cluster.refuse})
                return
            name = body["metadata"]["name"]
            with cluster.lock:
                if path[-1] == "pods":
                    body["metadata"]["uid"] = str(uuid.uuid4())
                    body["metadata"]["creationTimestamp"] = _now()
                    body["status"] = {"phase": "Pending"}
                    cluster.pods[name] = body
                else:
                    cluster.secrets[name] = body
            if path[-1] == "pods" and cluster.kubelet is not None:
                cluster.kubelet.run(body)
            self._answer(201, body)

        def do_GET(self) -> None:
            path, query, _body = self._record()
            with cluster.lock:
                if path[-1] == "pods":
                    wanted = dict(
                        s.split("=", 1) for s in query.get("labelSelector", [""])[0].split(",")
                    )
                    items = [
                        p
                        for p in cluster.pods.values()
                        if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                    ]
                    self._answer(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
                elif path[-1] == "log":
                    self._answer(200, self._log(path[-2], query), "text/plain")
                elif path[-1] in cluster.pods:
                    self._answer(200, cluster.pods[path[-1]])
                else:
                    self._missing()

        def _log(self, pod: str, query: dict[str, list[str]]) -> str:
            container = query.get("container", [""])[0]
            text = cluster.logs.get(pod)
            if text is None and cluster.kubelet is not None:
                text = cluster.kubelet.log(pod, container)
            lines = (text or "").splitlines(keepends=True)
            tail = query.get("tailLines", [""])[0]
            return "".join(lines[-int(tail) :] if tail.isdigit() else lines)

        def do_DELETE(self) -> None:
            path, query, _body = self._record()
            with cluster.lock:
                store = cluster.pods if path[-2] == "pods" else cluster.secrets
                found = store.get(path[-1])
                if found is None:
                    self._missing()
                    return
                if store is cluster.secrets:
                    del store[path[-1]]
                    self._answer(200, {"kind": "Status", "status": "Success"})
                    return
                grace = query.get("gracePeriodSeconds", [""])[0]
                seconds = (
                    int(grace)
                    if grace.isdigit()
                    else found["spec"]["terminationGracePeriodSeconds"]
                )
                kubelet = cluster.kubelet
                if kubelet is None or not kubelet.runs(found) or seconds == 0:
                    del store[path[-1]]  # nothing runs it, or a forced delete
                else:
                    found["metadata"]["deletionTimestamp"] = _now()
                    found["metadata"]["deletionGracePeriodSeconds"] = seconds
            if kubelet is not None and kubelet.runs(found):
                kubelet.delete(found, seconds)
            self._answer(200, found)  # a deleted pod comes back, as the real API does

    return Handler


@contextlib.contextmanager
def serve(cluster: FakeCluster) -> Iterator[FakeCluster]:
    """Serve `cluster` on 127.0.0.1 (its `url`) until the block ends; end its pods then."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    cluster.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield cluster
    finally:
        server.shutdown()
        server.server_close()
        if cluster.kubelet is not None:
            cluster.kubelet.close()


# -- the kubelet ------------------------------------------------------------------------------


def why_no_kubelet() -> str | None:
    """What this machine lacks to run pods, in one sentence, or None."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed: apt-get install bubblewrap."
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        return "setpriv is not installed: apt-get install util-linux."
    return None


def _quantity_bytes(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1000, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def _quantity_cpus(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


class _Container:
    """One container of a pod while it runs: a host process or a Docker container."""

    def __init__(self, spec: dict[str, Any], log: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log = log
        self.started_at = _now()
        self.code: int | None = None
        self.finished_at = ""

    def poll(self) -> int | None:
        raise NotImplementedError

    def signal(self, signum: int) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        """Let go of what is left of it once it has ended."""

    def ended(self) -> bool:
        if self.code is None:
            self.code = self.poll()
            if self.code is not None:
                self.finished_at = _now()
        return self.code is not None

    def state(self) -> dict[str, Any]:
        if self.code is None:
            return {"running": {"startedAt": self.started_at}}
        return {
            "terminated": {
                "exitCode": self.code,
                "reason": "Completed" if self.code == 0 else "Error",
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
            }
        }


class _HostProcess(_Container):
    """A container of the launcher image: this checkout's Python in bubblewrap."""

    def __init__(
        self, spec: dict[str, Any], log: Path, argv: list[str], env: dict[str, str]
    ) -> None:
        super().__init__(spec, log)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o022,  # a container's, whatever the test's own is
            )

    def poll(self) -> int | None:
        code = self.process.poll()
        # bwrap hands back its payload's status; a signal's death reads as 128 + its number.
        return None if code is None else (128 - code if code < 0 else code)

    def signal(self, signum: int) -> None:
        if self.process.poll() is not None:
            return
        if signum == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return
        # The container's main process is bwrap's child (bwrap waits for it and ends with it).
        for pid in _children(self.process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


class _DockerContainer(_Container):
    """A container of any other image, on the real Docker engine."""

    def __init__(self, spec: dict[str, Any], log: Path, container: Any) -> None:
        super().__init__(spec, log)
        self.container = container
        self._code: int | None = None
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        while True:
            try:
                answer = self.container.wait()
                break
            except Exception:  # the engine's read timed out: the container still runs
                time.sleep(TICK_SECONDS)
        with contextlib.suppress(Exception):
            self.log.write_bytes(self.container.logs())
        self._code = int(answer.get("StatusCode", 255))

    def poll(self) -> int | None:
        return self._code

    def signal(self, signum: int) -> None:
        with contextlib.suppress(Exception):
            self.container.kill(signal=signal.Signals(signum).name)

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)


class _Waiting(Exception):
    """A container the kubelet cannot start: its waiting reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _PodRun:
    """One pod on the node, from its emptyDir to its removal."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"]["uid"]
        self.spec: dict[str, Any] = pod["spec"]
        self.folder = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=kubelet.node_dir))
        self.folder.chmod(0o755)
        self.volumes: dict[str, Path] = {}
        self.containers: dict[str, _Container] = {}
        self.waiting: dict[str, tuple[str, str]] = {}
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.started_at = _now()
        self.deletion: float | None = None  # when the grace of a delete ends
        self.removed = False
        self.thread = threading.Thread(target=self._run, name=f"kubelet-{self.name}", daemon=True)

    # -- what the API server asks ------------------------------------------------------------

    def delete(self, grace: int) -> None:
        if grace == 0:
            self.removed = True
        self.deletion = time.monotonic() + grace

    def log(self, container: str) -> str:
        path = self.folder / "logs" / f"{container}.log"
        try:
            return path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    # -- the node's side ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._prepare()
            self._publish()
            self._lifecycle()
            self._publish()
        except Exception as exc:  # the test reads it in the pod's status
            self.phase, self.reason, self.message = "Failed", "KubeletError", repr(exc)
            self._publish()
        finally:
            self._end_everything(0)
            while not self.removed and not self.kubelet.closing.is_set():
                if self.deletion is not None:
                    self.removed = True
                time.sleep(TICK_SECONDS)
            self._forget()

    def _prepare(self) -> None:
        (self.folder / "logs").mkdir()
        group = (self.spec.get("securityContext") or {}).get("fsGroup")
        for volume in self.spec.get("volumes") or []:
            if "emptyDir" not in volume:
                raise ValueError(f"this kubelet mounts emptyDir volumes only: {volume!r}")
            path = self.folder / "volumes" / volume["name"]
            path.mkdir(parents=True)
            path.chmod(0o777)
            if group is not None:
                with contextlib.suppress(PermissionError):
                    os.chown(path, -1, int(group))
                path.chmod(0o2777)
            self.volumes[volume["name"]] = path

    def _lifecycle(self) -> None:
        deadline = self.spec.get("activeDeadlineSeconds")
        ends_at = time.monotonic() + float(deadline) if deadline else None
        stages = [[c] for c in self.spec.get("initContainers") or []]
        stages.append(list(self.spec["containers"]))
        for stage in stages:
            for spec in stage:
                self._start(spec)
            if stage is stages[-1] and not self.waiting:
                self.phase = "Running"
            # A container that cannot start keeps the pod waiting (a node retries a pull)
            # until the pod is deleted or its deadline passes.
            while not all(self._ended(spec["name"]) for spec in stage):
                if self.deletion is not None:
                    self._end_everything(self.deletion - time.monotonic())
                    return
                if ends_at is not None and time.monotonic() > ends_at:
                    self._end_everything(float(self.spec.get("terminationGracePeriodSeconds", 30)))
                    self.phase, self.reason = "Failed", "DeadlineExceeded"
                    self.message = "Pod was active on the node longer than the specified deadline"
                    return
                self._publish()
                time.sleep(TICK_SECONDS)
            if self._failed():
                self.phase = "Failed"
                return
        self.phase = "Succeeded"

    def _ended(self, name: str) -> bool:
        container = self.containers.get(name)
        return container is not None and container.ended()

    def _failed(self) -> bool:
        return any(c.code not in (None, 0) for c in self.containers.values())

    def _start(self, spec: dict[str, Any]) -> None:
        try:
            env = self._environment(spec)
            uid, gid, groups = self._identity(spec)
            log = self.folder / "logs" / f"{spec['name']}.log"
            if spec["image"] == self.kubelet.launcher_image:
                container: _Container = self._host_process(spec, env, log, uid, gid, groups)
            else:
                container = self._docker(spec, env, log, uid, gid, groups)
        except _Waiting as waiting:
            self.waiting[spec["name"]] = (waiting.reason, waiting.message)
            return
        self.containers[spec["name"]] = container

    def _environment(self, spec: dict[str, Any]) -> dict[str, str]:
        env = {"HOSTNAME": self.name, "KUBERNETES_SERVICE_HOST": "127.0.0.1"}
        for item in spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            value = self.kubelet.cluster.secret_value(ref["name"], ref["key"])
            if value is None:
                raise _Waiting("CreateContainerConfigError", f'secret "{ref["name"]}" not found')
            env[item["name"]] = value
        return env

    def _identity(self, spec: dict[str, Any]) -> tuple[int, int, list[int]]:
        pod = self.spec.get("securityContext") or {}
        own = spec.get("securityContext") or {}
        uid = int(own.get("runAsUser", pod.get("runAsUser", 0)))
        gid = int(own.get("runAsGroup", pod.get("runAsGroup", 0)))
        if own.get("runAsNonRoot", pod.get("runAsNonRoot")) and uid == 0:
            raise _Waiting(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image will run as root",
            )
        groups = [int(pod["fsGroup"])] if "fsGroup" in pod else []
        return uid, gid, groups

    def _mounts(self, spec: dict[str, Any]) -> list[tuple[Path, str]]:
        return [(self.volumes[m["name"]], m["mountPath"]) for m in spec.get("volumeMounts") or []]

    def _host_process(
        self,
        spec: dict[str, Any],
        env: dict[str, str],
        log: Path,
        uid: int,
        gid: int,
        groups: list[int],
    ) -> _Container:
        command = [*spec.get("command", []), *spec.get("args", [])]
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable  # the launcher image's Python is this checkout's
        argv = [shutil.which("bwrap") or "bwrap", "--dev-bind", "/", "/"]
        for source, target in self._mounts(spec):
            argv += ["--bind", str(source), target]
        argv += ["--chdir", spec.get("workingDir") or str(BASE_DIR)]
        if os.geteuid() == 0:
            caps = "+dac_read_search"
            argv += [
                "--",
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
                f"--inh-caps={caps}",
                f"--ambient-caps={caps}",
            ]
        elif uid != os.geteuid():
            raise _Waiting(
                "CreateContainerError",
                f"this kubelet runs host processes as uid {os.geteuid()} only, not {uid}",
            )
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",  # the launcher image's user has no home of its own
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **self.kubelet.launcher_env,
            **env,
        }
        return _HostProcess(spec, log, [*argv, "--", *command], env)

    def _docker(
        self,
        spec: dict[str, Any],
        env: dict[str, str],
        log: Path,
        uid: int,
        gid: int,
        groups: list[int],
    ) -> _Container:
        import docker

        engine = self.kubelet.engine
        image = spec["image"]
        try:
            engine.images.get(image)
        except docker.errors.ImageNotFound:
            raise _Waiting(
                "ErrImagePull",
                f'this node pulls no image and has no "{image}": build it on the Docker engine',
            ) from None
        security = spec.get("securityContext") or {}
        limits = (spec.get("resources") or {}).get("limits") or {}
        cpus = min(_quantity_cpus(limits.get("cpu", "1")), float(os.cpu_count() or 1))
        container = engine.containers.run(
            image,
            entrypoint=spec.get("command"),
            command=spec.get("args") or [],
            working_dir=spec.get("workingDir"),
            environment=env,
            user=f"{uid}:{gid}",
            group_add=[str(g) for g in groups] or None,
            volumes={str(s): {"bind": t, "mode": "rw"} for s, t in self._mounts(spec)},
            network_mode="host",
            cap_drop=(security.get("capabilities") or {}).get("drop"),
            security_opt=(
                ["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else []
            ),
            mem_limit=_quantity_bytes(limits["memory"]) if "memory" in limits else None,
            nano_cpus=int(cpus * 1e9),
            labels={KUBELET_LABEL: f"{self.name}.{self.uid}", **self.kubelet.labels},
            detach=True,
        )
        return _DockerContainer(spec, log, container)

    def _end_everything(self, grace: float) -> None:
        """SIGTERM every container still running, wait out the grace, SIGKILL what is left."""
        running = [c for c in self.containers.values() if not c.ended()]
        if not running:
            return
        if grace > 0:
            for container in running:
                container.signal(signal.SIGTERM)
            until = time.monotonic() + grace
            while time.monotonic() < until and not all(c.ended() for c in running):
                self._publish()
                time.sleep(TICK_SECONDS)
        for container in running:
            if not container.ended():
                container.signal(signal.SIGKILL)
        while not all(c.ended() for c in running):
            time.sleep(TICK_SECONDS)
        self._publish()

    def _publish(self) -> None:
        """Write what runs into the pod the API server shows, while it still shows it."""

        def statuses(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for spec in specs:
                container = self.containers.get(spec["name"])
                if container is not None:
                    container.ended()
                    state = container.state()
                elif spec["name"] in self.waiting:
                    reason, message = self.waiting[spec["name"]]
                    state = {"waiting": {"reason": reason, "message": message}}
                else:
                    state = {"waiting": {"reason": "PodInitializing"}}
                out.append(
                    {
                        "name": spec["name"],
                        "image": spec["image"],
                        "imageID": "",
                        "ready": "running" in state,
                        "restartCount": 0,
                        "state": state,
                    }
                )
            return out

        status: dict[str, Any] = {
            "phase": self.phase,
            "startTime": self.started_at,
            "initContainerStatuses": statuses(self.spec.get("initContainers") or []),
            "containerStatuses": statuses(self.spec["containers"]),
        }
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        cluster = self.kubelet.cluster
        with cluster.lock:
            shown = cluster.pods.get(self.name)
            if shown is not None and shown["metadata"].get("uid") == self.uid:
                shown["status"] = status

    def _forget(self) -> None:
        cluster = self.kubelet.cluster
        with cluster.lock:
            shown = cluster.pods.get(self.name)
            if shown is not None and shown["metadata"].get("uid") == self.uid:
                del cluster.pods[self.name]
        for container in self.containers.values():
            container.remove()
        self.kubelet.gone[self.name] = {name: self.log(name) for name in self.containers}
        self.kubelet.forget(self)
        shutil.rmtree(self.folder, ignore_errors=True)


class Kubelet:
    """Runs the pods of a FakeCluster on this machine (see the module's docstring)."""

    def __init__(
        self,
        cluster: FakeCluster,
        *,
        launcher_image: str,
        engine: Any,
        node_dir: Path,
        launcher_env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.launcher_image = launcher_image
        # The launcher image's own environment (its ENV lines), under the container's env.
        self.launcher_env = launcher_env or {}
        self.engine = engine
        self.node_dir = node_dir
        self.labels = labels or {}
        self.closing = threading.Event()
        # The logs of the pods that are gone, by pod and container: for failure messages.
        self.gone: dict[str, dict[str, str]] = {}
        self._runs: dict[str, _PodRun] = {}
        self._lock = threading.Lock()
        cluster.kubelet = self

    def run(self, pod: dict[str, Any]) -> None:
        """Start running a pod the API server was given."""
        run = _PodRun(self, pod)
        with self._lock:
            self._runs[run.uid] = run
        run.thread.start()

    def runs(self, pod: dict[str, Any]) -> bool:
        with self._lock:
            return pod["metadata"].get("uid") in self._runs

    def delete(self, pod: dict[str, Any], grace: int) -> None:
        with self._lock:
            run = self._runs.get(pod["metadata"].get("uid"))
        if run is not None:
            run.delete(grace)

    def log(self, name: str, container: str) -> str:
        with self._lock:
            runs = [r for r in self._runs.values() if r.name == name and not r.removed]
        return runs[-1].log(container) if runs else ""

    def all_logs(self) -> dict[str, dict[str, str]]:
        """Every pod's logs, by pod and container, whether it is gone or still here."""
        with self._lock:
            runs = list(self._runs.values())
        here = {run.name: {name: run.log(name) for name in list(run.containers)} for run in runs}
        return {**self.gone, **here}

    def forget(self, run: _PodRun) -> None:
        with self._lock:
            self._runs.pop(run.uid, None)

    def close(self, timeout: float = 30) -> None:
        """Delete every pod still on the node at once, and wait until they are gone."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.delete(0)
        self.closing.set()
        for run in runs:
            run.thread.join(timeout)


def node_mount_points(paths: list[str]) -> None:
    """Make the folders the pods mount over (bwrap binds onto this machine's own folders), or
    skip saying how."""
    for path in paths:
        try:
            for parent in reversed([Path(path), *Path(path).parents]):
                if not parent.exists():
                    parent.mkdir()
                    # Whatever the umask: the pods' build user walks through it.
                    parent.chmod(0o755)
        except OSError as exc:
            pytest.skip(
                f"The fake cluster's pods mount their workspace over {path}: create it as root "
                f"(mkdir -p {path}; chmod 755 {Path(path).parts[1]}). {exc}"
            )
