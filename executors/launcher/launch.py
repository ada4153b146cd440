"""One build from start to end: fetch what to run, run it, report it over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from . import process
from .agent import Agent, AgentError, control_dir, prepare_control_dir
from .api import ApiClient, ApiError, ConflictError
from .artifacts import Caps, Publisher, masked_environment, zip_requested
from .cache import SETUP_STEP as SETUP_CACHE
from .cache import TEARDOWN_STEP as TEARDOWN_CACHE
from .cache import CacheApi, Caches, CacheSpec
from .credentials import CredentialError
from .environment import build_environment
from .livesocket import LogTransport, socket_url
from .logs import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_STEP_BYTES, Block, LogBatcher, Masker
from .metaserver import MetaServer
from .runner import Checkout, InternalStep, Runner, Step, iso
from .sandbox import Sandbox, SandboxError
from .workspace import Workspace

# Before the build runs, the API must answer within this (less than the server's 60 s start
# grace): a launcher that cannot reach it at all exits, and the reaper frees the build.
START_PATIENCE_SECONDS = 45.0
# However long logs take to land, this much of the token's life is kept for the final status.
FINAL_STATUS_RESERVE_SECONDS = 300.0
# The teardown budget of a spec that names none (a server older than the field).
DEFAULT_TEARDOWN_SECONDS = 60.0


def timeout_message(seconds: float) -> str:
    """`Build timed out after N minutes`, with N as short as it can be while still exact-ish."""
    minutes = seconds / 60
    text = f"{minutes:.2f}".rstrip("0").rstrip(".")
    return f"Build timed out after {text} minutes"


def warn(message: str) -> None:
    """Note a problem on the launcher's own stderr (the executor keeps it in a file)."""
    sys.stderr.write(f"launcher: {message}\n")
    sys.stderr.flush()


class ApiReporter:
    """Reports steps with PUTs and logs through a batcher; API trouble never stops the build.

    Reports go out from a thread of their own, so a step never waits for an HTTP round trip
    before the next one starts. One request is on its way at a time, and the reports that come
    meanwhile go together in the next: `PUT /builds/{id}/steps` with one entry per step (a step
    that started and ended meanwhile says both in one), so ten quick steps cost a few requests,
    not twenty. Each step's reports go in order, its end after its last log lines: a request
    that carries ends first flushes those steps' logs. A request the API does not take is
    resent until it does, or until the build token expires: a restart of the API delays the
    reports, it never loses them. `close` waits for the request on its way and hands back the
    reports not sent yet, one per step, for the final status to carry: the last quick steps'
    reports then cost no request of their own. The end of the build's last step is never sent
    on its own: the final status always follows, and carries it.
    """

    def __init__(self, client: ApiClient, build_id: int, batcher: LogBatcher) -> None:
        self.client = client
        self.build_id = build_id
        self.batcher = batcher
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._closing = threading.Event()
        self._unsent: list[tuple[str, dict[str, Any]]] = []
        self._held: list[tuple[str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._send_all, name="step-reports", daemon=True)
        self._thread.start()

    def _step_path(self, name: str) -> str:
        return f"/builds/{self.build_id}/steps/{quote(name, safe='')}"

    def step_started(self, name: str, at: datetime) -> None:
        """Queue the report of the start time."""
        self._queue.put((name, {"startTime": iso(at)}))

    def lines(self, name: str, blocks: list[Block]) -> None:
        """Queue lines for the batcher."""
        self.batcher.add(name, blocks)

    def step_ended(self, name: str, at: datetime, code: int, *, last: bool = False) -> None:
        """Queue the report of the end, sent once the step's last lines are out; the last
        step's is kept for the final status."""
        report = (name, {"endTime": iso(at), "code": code})
        if last:
            self._held.append(report)
        else:
            self._queue.put(report)

    def send_batch(self, name: str, payload: dict[str, Any]) -> Any:
        """The batcher's sender (the batcher resends what fails, in order)."""
        return self.client.request("POST", self._step_path(name) + "/logs", payload, retries=0)

    def close(self) -> list[dict[str, Any]]:
        """Wait until the request on its way is sent (or given up on), keeping time for the
        final status; return the other reports, `{"name", ...}` for each step in order."""
        self._closing.set()
        self._queue.put(None)
        self._thread.join(max(1.0, self.client.seconds_left() - FINAL_STATUS_RESERVE_SECONDS))
        return _one_per_step([*self._unsent, *self._held])

    def send(self, reports: list[dict[str, Any]]) -> None:
        """Send reports that `close` handed back and no final status will carry."""
        if reports:
            self._deliver(reports)

    def _send_all(self) -> None:
        while True:
            waiting = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    waiting.append(self._queue.get_nowait())
            pending = [item for item in waiting if item is not None]
            if self._closing.is_set():
                # The steps are over: what has not gone yet goes with the final status.
                self._unsent = pending
                return
            self._deliver(_one_per_step(pending))

    def _deliver(self, reports: list[dict[str, Any]]) -> None:
        # The log is whole by the time a step is reported ended.
        for report in reports:
            if "endTime" in report:
                self.batcher.flush(report["name"], self.client.seconds_left())
        what = "the reports of " + ", ".join(report["name"] for report in reports)
        try:
            self.client.deliver(
                "PUT", f"/builds/{self.build_id}/steps", reports, on_retry=_warn_once(what)
            )
        except ApiError as exc:
            if exc.permanent and len(reports) > 1:
                # Refused as a whole: each step on its own, so one the API refuses (a name it
                # does not know) costs only its own report.
                for report in reports:
                    self._deliver([report])
                return
            warn(f"could not send {what}: {exc}")


def _one_per_step(reports: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """`{"name", ...}` for each step in the order first reported, its reports merged in order."""
    merged: dict[str, dict[str, Any]] = {}
    for name, body in reports:
        merged[name] = {**merged.get(name, {"name": name}), **body}
    return list(merged.values())


class Heartbeat:
    """Renews the build's lease; an answer other than RUNNING asks the build to stop."""

    def __init__(
        self, client: ApiClient, build_id: int, interval: float, stop: threading.Event
    ) -> None:
        self.client = client
        self.build_id = build_id
        self.interval = max(interval, 0.1)
        self.stop = stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-heartbeat", daemon=True)

    def start(self) -> None:
        """Begin beating."""
        self._thread.start()

    def close(self) -> None:
        """Stop beating."""
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                answer = self.client.post(
                    f"/builds/{self.build_id}/heartbeat", {}, timeout=min(self.interval, 10)
                )
            except ConflictError:
                answer = {"status": "FINISHED"}
            except ApiError as exc:
                # The lease is long enough to survive a missed beat; keep the build going.
                warn(f"heartbeat failed: {exc}")
                continue
            status = answer.get("status") if isinstance(answer, dict) else None
            if status and status != "RUNNING":
                self.stop.set()


def _is_running(client: ApiClient, build_id: int) -> bool:
    try:
        build = client.deliver("GET", f"/builds/{build_id}", within=START_PATIENCE_SECONDS)
    except ApiError:
        return False
    return isinstance(build, dict) and build.get("status") == "RUNNING"


def _warn_once(what: str) -> Callable[[ApiError], None]:
    """An `on_retry` that says once that a report is being resent, and why."""
    said = False

    def note(exc: ApiError) -> None:
        nonlocal said
        if not said:
            warn(f"the API did not take {what} ({exc}); resending until it does")
            said = True

    return note


def teardown_seconds(spec: Mapping[str, Any]) -> float:
    """How long the teardown steps of a stopped or timed-out build may run: the spec's
    `teardownSeconds` (the job's terminationGracePeriodSeconds), else 60."""
    value = spec.get("teardownSeconds")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return DEFAULT_TEARDOWN_SECONDS
    return float(value)


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def run_build(
    *,
    api_url: str,
    build_id: int,
    workspace_dir: Path,
    token: str,
    started: float,
    environ: Mapping[str, str] | None = None,
    agent_dir: Path | None = None,
    agent_timeout: float = 120.0,
    sandbox: Sandbox | None = None,
) -> int:
    """Run build `build_id`; `started` is the monotonic time the launcher began.

    With `agent_dir`, user steps run in a build container through its agent (see agent.py);
    with `sandbox`, in a bubblewrap sandbox that this launcher starts (see sandbox.py).
    """
    environ = os.environ if environ is None else environ
    client = ApiClient(api_url, token)
    stop = threading.Event()
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The sandbox needs nothing from the spec: it starts while the spec is on its way. The
    # request goes from a thread, and bwrap starts from this one: with --die-with-parent it
    # dies with the thread that started it.
    fetched: list[dict[str, Any] | int] = []
    fetcher = threading.Thread(
        target=lambda: fetched.append(_fetch_spec(client, build_id)), name="sd-launch"
    )
    fetcher.start()
    early = _EarlySandbox.start(sandbox, workspace_dir) if sandbox is not None else None
    fetcher.join()
    spec = fetched[0] if fetched else 1  # the thread said why on stderr
    if isinstance(spec, int):
        if early is not None:
            early.discard()
        return spec

    try:
        final = _run_spec(
            client=client,
            build_id=build_id,
            spec=spec,
            workspace_dir=workspace_dir,
            token=token,
            started=started,
            environ=environ,
            stop=stop,
            agent_dir=agent_dir,
            agent_timeout=agent_timeout,
            sandbox=sandbox,
            early=early,
        )
    except Exception as exc:
        # A broken spec or workspace must still end the build rather than leave it RUNNING.
        warn(f"the build could not run: {exc!r}")
        final = {"status": "FAILURE", "statusMessage": f"The launcher failed: {exc}"}
    if signalled and final.get("status") != "SUCCESS" and not final.get("statusMessage"):
        # Its host is going away (the server stopping, a pod evicted): the build did not
        # fail, it was stopped. A stop asked through the API has ended the build already.
        # The server words the message: a build's own code holds this token too.
        final = {**final, "status": "ABORTED", "signal": signal.Signals(signalled[0]).name}
    try:
        client.deliver("PUT", f"/builds/{build_id}", final, on_retry=_warn_once("the final status"))
    except ConflictError:
        pass  # stopped meanwhile (or an earlier send landed): the server holds the final status
    except ApiError as exc:
        warn(f"could not report the final status: {exc}")
        return 1
    return 0


def _fetch_spec(client: ApiClient, build_id: int) -> dict[str, Any] | int:
    """What to run, with the build marked RUNNING, in one round trip; or the launcher's exit
    code when there is nothing to run."""
    launch = f"/builds/{build_id}/launch"
    try:
        spec: dict[str, Any] = client.deliver("POST", launch, {}, within=START_PATIENCE_SECONDS)
    except ConflictError:
        # Stopped before it ran, or a resend of ours that the server had taken already.
        if not _is_running(client, build_id):
            return 0
        try:
            spec = client.deliver("GET", launch, within=START_PATIENCE_SECONDS)
        except ApiError as exc:
            warn(f"could not fetch what to run: {exc}")
            return 1
    except ApiError as exc:
        warn(f"could not fetch what to run: {exc}")
        return 1
    return spec


@dataclass
class _EarlySandbox:
    """The build's sandbox with its agent, started before the launch spec came back (or why
    it could not start, told once the build runs)."""

    agent: Agent | None = None
    jail: subprocess.Popen[bytes] | None = None
    error: Exception | None = None

    @classmethod
    def start(cls, sandbox: Sandbox, workspace_dir: Path) -> _EarlySandbox:
        started = cls()
        try:
            agent_dir = prepare_control_dir(control_dir(workspace_dir))
            started.agent = Agent(agent_dir)
            started.jail = sandbox.start_agent(agent_dir)
        except Exception as exc:
            started.error = exc
        return started

    def discard(self) -> None:
        """End it unused: there is no build to run. Its agent, never told to quit, dies with
        bwrap (`--die-with-parent`)."""
        if self.agent is not None:
            self.agent.close()
        if self.jail is not None:
            self.jail.kill()
            self.jail.wait(timeout=5)


def _run_spec(
    *,
    client: ApiClient,
    build_id: int,
    spec: dict[str, Any],
    workspace_dir: Path,
    token: str,
    started: float,
    environ: Mapping[str, str],
    stop: threading.Event,
    agent_dir: Path | None = None,
    agent_timeout: float = 120.0,
    sandbox: Sandbox | None = None,
    early: _EarlySandbox | None = None,
) -> dict[str, Any]:
    """Run what the launch spec describes; return the body of the final PUT."""
    heartbeat = Heartbeat(client, build_id, float(spec.get("heartbeatSeconds") or 15), stop)
    heartbeat.start()
    agent: Agent | None = None
    jail = None
    try:
        if sandbox is not None:
            # Started by `run_build` while the spec was on its way.
            assert early is not None
            agent, jail = early.agent, early.jail
            if early.error is not None and not isinstance(early.error, SandboxError):
                raise early.error  # the launcher failed, not the sandbox
        elif agent_dir is not None:
            agent = Agent(agent_dir)
        if agent is not None or sandbox is not None:
            try:
                if early is not None and early.error is not None:
                    raise early.error
                assert agent is not None
                gone = jail.poll if jail is not None else lambda: None
                agent.connect(
                    agent_timeout, should_give_up=lambda: stop.is_set() or gone() is not None
                )
            except (AgentError, SandboxError) as exc:
                where = "sandbox" if sandbox is not None else "build container"
                return {
                    "status": "FAILURE",
                    "statusMessage": f"The build could not start: the {where} did not: {exc}.",
                }
        return _run_steps(
            client=client,
            build_id=build_id,
            spec=spec,
            workspace_dir=workspace_dir,
            token=token,
            started=started,
            environ=environ,
            stop=stop,
            agent=agent,
            owner=sandbox.user if sandbox is not None else None,
        )
    finally:
        heartbeat.close()
        if agent is not None:
            agent.close()
        if jail is not None:
            _end_sandbox(jail)


def _end_sandbox(jail: Any) -> None:
    """The agent has been told to quit and killed what was left; make sure bwrap is gone."""
    try:
        jail.wait(timeout=5)
    except Exception:
        jail.kill()
        jail.wait(timeout=5)


def _run_steps(
    *,
    client: ApiClient,
    build_id: int,
    spec: dict[str, Any],
    workspace_dir: Path,
    token: str,
    started: float,
    environ: Mapping[str, str],
    stop: threading.Event,
    agent: Agent | None,
    owner: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Prepare the workspace, run checkout and steps, and say how it went."""
    # In a container, steps see its environment (the image's PATH, HOME...), not ours.
    base = agent.environment() if agent is not None else environ
    sweep = process.set_child_subreaper() and process.has_proc()
    checkout_spec = spec.get("checkout") or {}
    workspace = Workspace(
        Path(workspace_dir).resolve(),
        Workspace.safe_name(checkout_spec.get("name")),
        Workspace.safe_source_dir(checkout_spec.get("rootDir")),
    )
    workspace.prepare(spec.get("meta") or {}, agent.directory if agent else None)
    meta_server = None
    if agent is not None:
        # The container's `meta` is a shell client; this thread answers it.
        meta_server = MetaServer(
            agent.directory,
            workspace.meta_path,
            api_url=client.base,
            token=token,
            tree=workspace.tree,
        )
        meta_server.start()
    secrets = {str(k): str(v) for k, v in (spec.get("secrets") or {}).items()}
    config_checkout = _config_checkout(spec)
    env = build_environment(
        base=base,
        launcher_vars=workspace.variables(token, config=config_checkout is not None),
        bin_dir=workspace.bin,
        job_environment=[(str(k), str(v)) for k, v in spec.get("environment") or []],
        secrets=secrets,
    )
    if meta_server is not None:
        meta_server.environ = env  # SD_PIPELINE_ID, for `meta get --external JOB`
    pr = checkout_spec.get("pr") or {}
    checkout = (
        Checkout(
            url=str(checkout_spec["url"]),
            sha=str(checkout_spec.get("sha") or ""),
            branch=str(checkout_spec.get("branch") or ""),
            pr_number=int(pr.get("number") or 0),
            pr_ref=str(pr.get("headRef") or ""),
            auth=str(checkout_spec.get("auth") or ""),
        )
        if checkout_spec.get("url")
        else None
    )
    steps = [Step(str(s["name"]), str(s.get("command") or "")) for s in spec.get("steps") or []]
    timeout = float(spec.get("timeoutSeconds") or 90 * 60)
    reporter: ApiReporter
    socket_path = spec.get("logSocket")
    transport = LogTransport(
        lambda name, payload: reporter.send_batch(name, payload),
        url=socket_url(client.base, socket_path) if isinstance(socket_path, str) else None,
        token=token,
    )
    batcher = LogBatcher(
        transport.send, keep_trying_for=client.seconds_left, fast=transport.streaming
    )
    reporter = ApiReporter(client, build_id, batcher)
    masker = Masker([*secrets.values(), token])
    publisher = _publisher(
        spec, client=client, build_id=build_id, workspace=workspace, env=env, masker=masker
    )
    restore: tuple[InternalStep, ...] = ()
    save: tuple[InternalStep, ...] = ()
    cache_spec = CacheSpec.of(spec.get("cache"))
    if cache_spec is not None:
        caches = Caches(cache_spec, CacheApi(client.base, token, build_id), workspace, env)
        restore = (InternalStep(SETUP_CACHE, caches.restore),)
        save = (InternalStep(TEARDOWN_CACHE, caches.save),)
    runner = Runner(
        workspace=workspace,
        env=env,
        reporter=reporter,
        shell=spec.get("shell") or "/bin/sh",
        masker=masker,
        max_line_bytes=_int_env(environ, "SD_LOG_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES),
        max_step_bytes=_int_env(environ, "SD_LOG_MAX_STEP_BYTES", DEFAULT_MAX_STEP_BYTES),
        stop=stop,
        deadline=started + timeout,
        teardown_budget=teardown_seconds(spec),
        sweep=sweep,
        agent=agent,
        owner=owner,
        credentials=lambda: _checkout_credential(client, build_id),
        launcher_env=environ,
        publisher=publisher,
        before_steps=restore,
        after_success=save,
    )
    ran = False
    try:
        result = runner.run(steps, checkout, config_checkout)
        ran = True
    finally:
        # Every log line is out before the final status says its step ended; the last ones go
        # while the last step reports are still on their way (a report of an end waits for
        # its step's lines itself).
        batcher.close(max(1.0, client.seconds_left() - FINAL_STATUS_RESERVE_SECONDS))
        unsent = reporter.close()
        if not ran:
            reporter.send(unsent)  # no final status of ours will carry them
            unsent = []
        transport.close()
        if meta_server is not None:
            meta_server.close()
    # `meta set KEY "$SECRET"` must not carry the value to the API (which masks it again).
    # The runner's masker: it also knows the checkout's credential, when there was one.
    final: dict[str, Any] = {
        "status": result.status,
        "meta": runner.masker.meta(_final_meta(workspace)),
    }
    if result.message:
        final["statusMessage"] = result.message
    if result.timed_out:
        final["statusMessage"] = timeout_message(timeout)
    if unsent:
        final["steps"] = unsent
    return final


def _config_checkout(spec: dict[str, Any]) -> Checkout | None:
    """A child pipeline's parent repository, at the sha its event read the file at."""
    config = spec.get("configCheckout")
    if not isinstance(config, dict) or not config.get("url"):
        return None
    return Checkout(
        url=str(config["url"]),
        sha=str(config.get("sha") or ""),
        branch=str(config.get("branch") or ""),
        auth=str(config.get("auth") or ""),
    )


def _checkout_credential(client: ApiClient, build_id: int) -> Any:
    """Ask for the checkout's credential: once, during sd-setup-scm (the API refuses it at any
    other time); the refusal's reason is the error's message."""
    try:
        return client.post(f"/builds/{build_id}/checkout-credential", {})
    except ApiError as exc:
        message = _api_message(exc)
        raise CredentialError(f"{exc} ({message})" if message else str(exc), message) from None


def _api_message(exc: ApiError) -> str:
    try:
        message = json.loads(exc.body).get("message")
    except (ValueError, AttributeError):
        message = None
    return message if isinstance(message, str) else ""


def _publisher(
    spec: dict[str, Any],
    *,
    client: ApiClient,
    build_id: int,
    workspace: Workspace,
    env: Mapping[str, str],
    masker: Masker,
) -> Publisher | None:
    """What publishes $SD_ARTIFACTS_DIR, if the server gave this build the step that does."""
    artifacts = spec.get("artifacts")
    if not isinstance(artifacts, dict):
        return None
    # environment.json holds the build's own variables (the server's, the launcher's, the
    # job's, its secrets), not whatever the machine running the launcher has.
    names = [
        *(str(name) for name, _value in spec.get("environment") or []),
        *workspace.variables("").keys(),
        *(str(name) for name in spec.get("secrets") or {}),
    ]
    hidden = {"SD_TOKEN", *(str(name) for name in spec.get("secrets") or {})}
    return Publisher(
        client=client,
        build_id=build_id,
        caps=Caps.from_spec(artifacts),
        workspace=workspace,
        environment=masked_environment(names, env, hidden, masker.text),
        zip_files=zip_requested(env),
        patience=lambda: max(1.0, client.seconds_left() - FINAL_STATUS_RESERVE_SECONDS),
    )


def _final_meta(workspace: Workspace) -> dict[str, Any]:
    try:
        return workspace.read_meta()
    except ValueError as exc:
        warn(f"meta.json is not valid JSON, sending none: {exc}")
    except OSError as exc:
        # A link in place of meta.json (or of meta/) is refused, never followed.
        warn(f"meta.json could not be read safely, sending none: {exc}")
    return {}
