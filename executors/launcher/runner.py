"""Running a build's steps: checkout, user steps in one shell session, teardown, stop."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from . import process
from .agent import Agent
from .artifacts import ARTIFACTS_STEP, steps_report
from .checkout import (
    Checkout,
    CheckoutError,
    Commands,
    conflict_message,
    refusal,
    shallow_of,
)
from .credentials import CONFIG_CREDENTIAL, KINDS, CloneAccess, CloneCredential, CredentialError
from .environment import export_script, without_private
from .logs import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_STEP_BYTES, Block, Masker, StepOutput
from .sandbox import hand_over
from .workspace import Workspace

SETUP_STEP = "sd-setup-scm"
TEARDOWN_PREFIX = "teardown-"
_F_SETPIPE_SZ = 1031
_READ_SIZE = 1 << 20
_MAX_PATH_BYTES = 4096


@dataclass(frozen=True)
class Step:
    """One user step of the job."""

    name: str
    command: str

    @property
    def is_teardown(self) -> bool:
        """Teardown steps always run, after the others."""
        return self.name.startswith(TEARDOWN_PREFIX)


@dataclass(frozen=True)
class InternalStep:
    """A step the launcher runs itself, not in the shell (`sd-setup-cache`...): `run(log,
    should_stop)` writes the step's log a line at a time and answers its exit code."""

    name: str
    run: Callable[[Callable[[str], None], Callable[[], bool]], int]


class Reporter(Protocol):
    """Where the runner reports progress (the API, or a list in tests)."""

    def step_started(self, name: str, at: datetime) -> None:
        """A step began."""

    def lines(self, name: str, blocks: list[Block]) -> None:
        """A step wrote the lines of these blocks (masked and capped already)."""

    def step_ended(self, name: str, at: datetime, code: int, *, last: bool = False) -> None:
        """A step ended with exit code `code`; `last`: no step follows it in this build."""


class Publishing(Protocol):
    """What publishes $SD_ARTIFACTS_DIR once the steps are over (artifacts.Publisher)."""

    def publish(
        self,
        steps: list[dict[str, Any]],
        log: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> int:
        """Publish the folder, saying what happens in `log`; return the step's exit code."""


@dataclass
class RunResult:
    """How the build went."""

    status: str
    codes: dict[str, int] = field(default_factory=dict)
    first_failure: int = 0
    stopped: bool = False
    timed_out: bool = False
    # Why it failed, in one sentence, where the steps' logs alone would leave it unsaid.
    message: str = ""


def iso(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, as Screwdriver writes times."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def exit_code(returncode: int) -> int:
    """A shell's view of a status: a death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class Runner:
    """Runs the steps of one build and reports them; drive it with `run()` once."""

    def __init__(
        self,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        reporter: Reporter,
        shell: str = "/bin/sh",
        masker: Masker | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_step_bytes: int = DEFAULT_MAX_STEP_BYTES,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        grace: float = 3.0,
        teardown_budget: float = 60.0,
        sweep: bool = False,
        agent: Agent | None = None,
        owner: tuple[int, int] | None = None,
        credentials: Callable[[], Any] | None = None,
        launcher_env: Mapping[str, str] | None = None,
        publisher: Publishing | None = None,
        before_steps: Sequence[InternalStep] = (),
        after_success: Sequence[InternalStep] = (),
    ) -> None:
        self.workspace = workspace
        self.env = dict(env)
        self.reporter = reporter
        self.shell = shell
        self.masker = masker or Masker(())
        self.max_line_bytes = max_line_bytes
        self.max_step_bytes = max_step_bytes
        self.stop = stop or threading.Event()
        self.deadline = deadline
        self.grace = grace
        self.teardown_budget = teardown_budget
        # Only a process that runs nothing but this build may end all of its descendants.
        self.sweep = sweep
        # With an agent, user steps run in the build container; checkout stays here.
        self.agent = agent
        # The (uid, gid) a sandbox runs the steps as, when not ours: it gets the workspace.
        self.owner = owner
        # Asks the API for the checkout's credential (see credentials.py); None: never asked.
        self.credentials = credentials
        # The launcher's own environment: what git runs with when the job's must stay out.
        self.launcher_env = os.environ if launcher_env is None else launcher_env
        self.publisher = publisher
        # When each step started and ended, and its code, for steps.json.
        self._times: dict[str, dict[str, Any]] = {}
        # Run after the checkout, before the user's steps (restoring caches); and once every
        # process of a successful build has ended (saving them).
        self.before_steps = tuple(before_steps)
        self.after_success = tuple(after_success)
        self.timed_out = False
        # The API's reason for refusing the checkout's credential: the build's status message.
        self._refusal = ""
        # The API's one answer to the credential request, for both checkouts of a child
        # pipeline's build (its own repository's, and its parent's under `configCheckout`).
        self._answer: dict[str, Any] | None = None
        self._stopped_at: float | None = None
        self._groups: list[int] = []
        self._counter = 0
        self._env_file = workspace.state / "env-0"
        self._cwd = workspace.source
        self._read_fd = -1
        self._write_fd = -1

    # -- stop and timeout -------------------------------------------------------------------

    def stopping(self) -> bool:
        """Whether the build must stop (asked to, or out of time); remembers when it began."""
        if self._stopped_at is not None:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.timed_out = True
            self.stop.set()
        if self.stop.is_set():
            self._stopped_at = time.monotonic()
            return True
        return False

    def _teardown_over(self) -> bool:
        self.stopping()
        started = self._stopped_at
        return started is not None and time.monotonic() >= started + self.teardown_budget

    # -- the build --------------------------------------------------------------------------

    def run(
        self,
        steps: Sequence[Step],
        checkout: Checkout | None = None,
        config_checkout: Checkout | None = None,
    ) -> RunResult:
        """Run checkout, the steps and the teardown steps; end every process left behind.

        `config_checkout` is a child pipeline's parent repository, cloned into
        $SD_CONFIG_DIR after the build's own checkout, as Screwdriver's sd-setup-scm does.
        """
        result = RunResult(status="FAILURE")
        if self.agent is not None:
            # The container's processes write to the agent's `out` FIFO: one stream, as here.
            # So do the launcher's own (git, for the checkout): without a descriptor of their
            # own they would get a pipe that no one reads, and their errors would be lost.
            self._read_fd, self._write_fd = os.dup(self.agent.out_fd), self.agent.writer()
        else:
            self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        with contextlib.suppress(OSError):
            # A bigger pipe means fewer wake-ups for chatty steps.
            fcntl.fcntl(self._read_fd, _F_SETPIPE_SZ, _READ_SIZE)
        try:
            # A clone needs an empty folder; without one the pipeline's folder is made, as
            # Screwdriver's checkout does when it skips the clone.
            first = self.workspace.checkout if checkout is not None else self.workspace.source
            with self.workspace.tree.directory(first, create=True):
                pass
            # The first step starts in the source folder: $PWD says so, whatever directory
            # the launcher (or the container's first process) was started from.
            first_env = {k: v for k, v in self.env.items() if k not in ("PWD", "OLDPWD")}
            first_env["PWD"] = str(self.workspace.source)
            self.workspace.write_private(self._env_file, export_script(first_env))
            if checkout is not None and not self.stopping():
                self._record(result, SETUP_STEP, self._setup_scm(checkout, config_checkout))
            for internal in self.before_steps:
                if not result.first_failure and not self.stopping():
                    self._record(result, internal.name, self._internal(internal))
            if self.owner is not None:
                hand_over(self.workspace.root, self.owner)
            for step in steps:
                if step.is_teardown or result.first_failure or self.stopping():
                    continue
                self._record(result, step.name, self._shell_step(step, None))
            for step in steps:
                if step.is_teardown and not self._teardown_over():
                    code = self._shell_step(step, result.first_failure)
                    self._record(result, step.name, code)
        finally:
            if self.agent is not None:
                self.agent.end_everything(self.grace, self._drain)
                # The agent ends now: a sandbox's agent is our descendant, and the sweep
                # below would give it (as pid 1, deaf to SIGTERM) the whole grace time.
                self.agent.close()
            groups = [] if self.sweep else self._groups
            process.kill_everything(groups, grace=self.grace, sweep=self.sweep)
            os.close(self._read_fd)
            if self._write_fd >= 0:
                os.close(self._write_fd)
        self.stopping()
        if not self.stop.is_set() and all(code == 0 for code in result.codes.values()):
            # Nothing of the build runs any more: what it left cannot change while it is read.
            for internal in self.after_success:
                if not self.stopping():
                    self._record(result, internal.name, self._internal(internal))
        if self.publisher is not None and not (self.stop.is_set() and not self.timed_out):
            # Every process of the build has ended: nothing of it can change the folder while
            # it is published. A stopped build publishes nothing (the server would refuse it);
            # a timed-out one does, within what is left of the teardown time.
            self._record(result, ARTIFACTS_STEP, self._publish(steps, checkout))
        result.stopped = self.stop.is_set()
        result.timed_out = self.timed_out
        result.message = self._refusal
        ok = not result.stopped and all(code == 0 for code in result.codes.values())
        result.status = "SUCCESS" if ok else "FAILURE"
        return result

    def _publish(self, steps: Sequence[Step], checkout: Checkout | None) -> int:
        assert self.publisher is not None
        output = self._output()
        self._started(ARTIFACTS_STEP)
        report = self.step_report(steps, checkout)

        def log(text: str) -> None:
            self._log(ARTIFACTS_STEP, output, f"{text}\n".encode("utf-8", "surrogateescape"))

        def should_stop() -> bool:
            return (self.stop.is_set() and not self.timed_out) or self._teardown_over()

        try:
            code = self.publisher.publish(report, log, should_stop)
        except Exception as exc:
            # Whatever went wrong, the step ends and says so; the build still reports.
            log(f"Publishing the artifacts failed: {exc!r}")
            code = 1
        self._log(ARTIFACTS_STEP, output, b"", finish=True)
        self._ended(ARTIFACTS_STEP, code, last=True)
        return code

    def step_report(self, steps: Sequence[Step], checkout: Checkout | None) -> list[dict[str, Any]]:
        """Every step of the build in the order it runs, for steps.json."""
        ordered = [s for s in steps if not s.is_teardown] + [s for s in steps if s.is_teardown]
        commands = [(SETUP_STEP, "")] if checkout is not None else []
        commands += [(s.name, s.command) for s in ordered] + [(ARTIFACTS_STEP, "")]
        return steps_report(commands, self._times)

    def _started(self, name: str) -> None:
        at = datetime.now(UTC)
        self._times[name] = {"startTime": iso(at)}
        self.reporter.step_started(name, at)

    def _ended(self, name: str, code: int, *, last: bool = False) -> None:
        at = datetime.now(UTC)
        self._times.setdefault(name, {}).update(endTime=iso(at), code=code)
        self.reporter.step_ended(name, at, code, last=last)

    @staticmethod
    def _record(result: RunResult, name: str, code: int) -> None:
        result.codes[name] = code
        if code and not result.first_failure:
            result.first_failure = code

    # -- steps ------------------------------------------------------------------------------

    def _setup_scm(self, checkout: Checkout, config_checkout: Checkout | None = None) -> int:
        output = self._output()
        self._started(SETUP_STEP)
        try:
            code = self._checkout(checkout, output)
        except CheckoutError as exc:
            self._log(SETUP_STEP, output, f"{exc}\n".encode())
            code = 1
        if code == 0 and not self._has_source_dir():
            self._log(SETUP_STEP, output, self._no_source_dir_message(checkout.target).encode())
            code = 1
        if code == 0 and config_checkout is not None and not self.stopping():
            note = f"Cloning the parent pipeline's repository into {self.workspace.config}\n"
            self._log(SETUP_STEP, output, note.encode())
            try:
                code = self._checkout(
                    config_checkout, output, self.workspace.config, CONFIG_CREDENTIAL
                )
            except CheckoutError as exc:
                self._log(SETUP_STEP, output, f"{exc}\n".encode())
                code = 1
        self._log(SETUP_STEP, output, b"", finish=True)
        self._ended(SETUP_STEP, code)
        return code

    def _internal(self, step: InternalStep) -> int:
        output = self._output()
        self.reporter.step_started(step.name, datetime.now(UTC))

        def log(text: str) -> None:
            self._log(step.name, output, text.encode("utf-8", "surrogateescape") + b"\n")

        try:
            code = step.run(log, self.stopping)
        except Exception as exc:
            log(f"The launcher failed in {step.name}: {exc!r}")
            code = 1
        self._log(step.name, output, b"", finish=True)
        self.reporter.step_ended(step.name, datetime.now(UTC), code)
        return code

    def _checkout(
        self,
        checkout: Checkout,
        output: StepOutput,
        directory: Path | None = None,
        member: str = "",
    ) -> int:
        """Clone, fetch and check out (into the build's checkout folder unless `directory`
        says otherwise); the credential (if any, the answer's `member` when named) lives only
        while git fetches."""
        refused = refusal(checkout)
        if refused:
            raise CheckoutError(refused)
        directory = directory or self.workspace.checkout
        shallow = shallow_of(self.env, checkout)
        plan = Commands(checkout, directory, shallow).plan()
        # Checkout runs here, never in the container: the image needs no git. A job's own
        # environment reaches git only where no credential is in play (local repositories,
        # public ones): it could name a proxy, a trace file or configuration that hands the
        # credential to the build.
        if self.agent is not None or checkout.auth:
            base = without_private(self.launcher_env)
        else:
            base = self.env
        env = {**base, "GIT_TERMINAL_PROMPT": "0", "GIT_MERGE_AUTOEDIT": "no"}
        access = self._access(checkout, member)
        # This step's output is masked with the credential too (it was set up before).
        output.masker = self.masker
        try:
            if access.note:
                self._log(SETUP_STEP, output, access.note.encode())
            remote_env = access.environment(env)
            for argv in plan.remote:
                code = self._git_command(argv, remote_env, output, access)
                if code != 0:
                    return code
            if plan.fetch_sha is not None and not self._has_commit(checkout.sha, env, directory):
                code = self._git_command(plan.fetch_sha, remote_env, output, access)
                if code != 0 and plan.unshallow is not None and not self.stopping():
                    # A server that sends no commit by its sha still sends whole branches.
                    note = f"Fetching the whole history to find {checkout.sha}.\n"
                    self._log(SETUP_STEP, output, note.encode())
                    code = self._git_command(plan.unshallow, remote_env, output, access)
                if code != 0:
                    return code
        finally:
            access.close()
        for argv in plan.local:
            code = self._git_command(argv, env, output)
            if code != 0:
                if argv is plan.merge and not self.stopping():
                    self._log(SETUP_STEP, output, conflict_message(checkout, shallow).encode())
                return code
        return 0

    def _access(self, checkout: Checkout, member: str = "") -> CloneAccess:
        """Ask the API for the checkout's credential (when it needs one) and hold it for git."""
        if not checkout.auth:
            return CloneAccess(None, checkout.url)
        if checkout.auth not in KINDS or self.credentials is None:
            raise CheckoutError(
                f"The launch spec asks for a {checkout.auth!r} credential, which "
                "this launcher cannot fetch."
            )
        try:
            answer = self._credential_answer()
            credential = CloneCredential.from_answer(
                answer.get(member) if member else answer, checkout.auth
            )
        except CredentialError as exc:
            self._refusal = exc.reason
            raise CheckoutError(f"Could not get the credential to clone with: {exc}.") from None
        except Exception as exc:
            raise CheckoutError(f"Could not get the credential to clone with: {exc}") from None
        # From now on the credential is masked wherever this build's output goes.
        self.masker = self.masker.adding(credential.secrets())
        try:
            return CloneAccess(credential, checkout.url)
        except CredentialError as exc:
            raise CheckoutError(f"Could not use the credential to clone with: {exc}.") from None

    def _credential_answer(self) -> dict[str, Any]:
        """The API's answer, asked for once: the API hands the credentials out only once."""
        if self._answer is None:
            assert self.credentials is not None
            answer = self.credentials()
            if not isinstance(answer, dict):
                raise CredentialError("the API did not answer with a credential")
            self._answer = answer
        return self._answer

    def _git_command(
        self,
        argv: list[str],
        env: Mapping[str, str],
        output: StepOutput,
        access: CloneAccess | None = None,
    ) -> int:
        """Run one git command of the checkout; the log shows it without the credential's
        options."""
        self._log(SETUP_STEP, output, f"$ {shlex.join(argv)}\n".encode())
        real = access.argv(argv) if access is not None else argv
        return self._execute(SETUP_STEP, real, self.workspace.root, env, output, self.stopping)

    def _has_commit(self, sha: str, env: Mapping[str, str], directory: Path) -> bool:
        """Whether the clone holds the commit (a shallow one may not)."""
        argv = ["git", "-C", str(directory), "rev-parse", "-q", "--verify"]
        try:
            found = subprocess.run(
                [*argv, "--end-of-options", f"{sha}^{{commit}}"],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return found.returncode == 0

    def _has_source_dir(self) -> bool:
        """Whether the checkout holds the pipeline's folder (a real one, never a link)."""
        try:
            with self.workspace.tree.directory(self.workspace.source):
                return True
        except (OSError, ValueError):
            return False

    def _no_source_dir_message(self, target: str) -> str:
        return (
            f"The source directory {self.workspace.source_dir} is not a folder of the "
            f"repository at {target}: add it, or change the pipeline's checkout URL.\n"
        )

    def _shell_step(self, step: Step, teardown_code: int | None) -> int:
        self._counter += 1
        k = self._counter
        state = self.workspace.state
        env_out, pwd_out = state / f"env-{k}", state / f"pwd-{k}"
        command, wrapper = state / f"cmd-{k}.sh", state / f"step-{k}.sh"
        text = step.command if step.command.endswith("\n") else step.command + "\n"
        q = shlex.quote
        source = self.workspace.source
        if self.agent is None:
            cwd = self._cwd if self._cwd.is_dir() else source
            cd = []
        else:
            # The directory is the container's: only the container can tell whether it is
            # still there (the launcher's machine may have one of that name, or not).
            cwd = self._cwd
            cd = [f"cd {q(str(cwd))} 2>/dev/null || cd {q(str(source))} || exit 1"]
        exports = [f"export SD_STEP_NAME={q(step.name)}"]
        if teardown_code is not None:
            exports.append(f"export SD_STEP_EXIT_CODE={teardown_code}")
        # The user's command is only ever sourced from its own file, never pasted into shell
        # text; the EXIT trap hands exported variables and the directory to the next step.
        # Earlier steps may have put links where these files go: the workspace's writes
        # replace them and never follow them.
        self._write(command, text)
        self._write(
            wrapper,
            "\n".join(
                [
                    # In a container the agent starts the shell; it changes directory itself.
                    *cd,
                    f". {q(str(self._env_file))}",
                    *exports,
                    f"__sd_env_out={q(str(env_out))}",
                    f"__sd_pwd_out={q(str(pwd_out))}",
                    'trap \'__sd_status=$?; export -p >"$__sd_env_out"; '
                    'pwd >"$__sd_pwd_out"; exit "$__sd_status"\' EXIT',
                    f". {q(str(command))}",
                    "",
                ]
            ),
        )
        # The shell starts almost empty and gets everything from the sourced state, so that a
        # variable a step unset stays unset. SD_ROOT_DIR lets an executor find build processes.
        env = {"SD_ROOT_DIR": self.env.get("SD_ROOT_DIR", str(self.workspace.root))}
        should_kill: Callable[[], bool] = self._teardown_over if step.is_teardown else self.stopping
        output = self._output()
        self._started(step.name)
        if self.agent is not None:
            code = self._in_container(step.name, k, wrapper, output, should_kill)
        else:
            code = self._execute(
                step.name, [self.shell, "-e", str(wrapper)], cwd, env, output, should_kill
            )
        self._log(step.name, output, b"", finish=True)
        self._ended(step.name, code)
        # Written by the step: a link in their place is refused, never followed.
        if self.workspace.tree.is_file(env_out):
            self._env_file = env_out
        with contextlib.suppress(OSError, ValueError):
            directory = self.workspace.tree.read(pwd_out, _MAX_PATH_BYTES).removesuffix(b"\n")
            if directory and b"\0" not in directory:
                self._cwd = Path(os.fsdecode(directory))
        return code

    def _write(self, path: Path, text: str) -> None:
        """A file for the steps to read: private, and theirs when they run as another user."""
        self.workspace.write_private(path, text, self.owner)

    # -- processes and output ---------------------------------------------------------------

    def _output(self) -> StepOutput:
        return StepOutput(self.masker, self.max_line_bytes, self.max_step_bytes)

    def _log(self, name: str, output: StepOutput, data: bytes, finish: bool = False) -> None:
        blocks = output.feed_blocks(data) if data else []
        if finish:
            blocks += output.finish_blocks()
        if blocks:
            self.reporter.lines(name, blocks)

    def _drain(self) -> None:
        """Discard what processes write after the last step, so they never block on it."""
        with contextlib.suppress(OSError):
            while os.read(self._read_fd, _READ_SIZE):
                pass

    def _pump(self, name: str, output: StepOutput, reads: int = 16) -> None:
        """Move what is in the pipe to the step's log, a bounded amount at a time."""
        for _ in range(reads):
            try:
                data = os.read(self._read_fd, _READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                return
            self._log(name, output, data)

    def _in_container(
        self,
        name: str,
        number: int,
        wrapper: Path,
        output: StepOutput,
        should_kill: Callable[[], bool],
    ) -> int:
        """Run one step through the agent in the build container; end it when told to."""
        agent = self.agent
        assert agent is not None
        agent.run(number, self.shell, wrapper)
        beat = time.monotonic()
        while number not in agent.codes:
            if should_kill():
                agent.end_everything(self.grace, lambda: self._pump(name, output))
                deadline = time.monotonic() + 5
                while number not in agent.codes and time.monotonic() < deadline:
                    agent.wait(0.05)
                break
            if time.monotonic() - beat > 1:
                beat = time.monotonic()
                if not agent.alive():
                    self._log(name, output, b"The build container went away.\n")
                    break
            ready, _, _ = select.select([self._read_fd, agent.events_fd], [], [], 0.1)
            if self._read_fd in ready:
                self._pump(name, output)
            if agent.events_fd in ready:
                agent.read_events()
        # Everything the step wrote before it exited is in the FIFO now.
        self._pump(name, output, reads=256)
        return agent.codes.get(number, 255 if agent.gone else 143)

    def _execute(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        output: StepOutput,
        should_kill: Callable[[], bool],
    ) -> int:
        """Run one process in its own group, logging its output; end it when told to."""
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._write_fd,
                stderr=self._write_fd,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            self._log(name, output, f"Could not start {argv[0]}: {exc}\n".encode())
            return 127
        self._groups.append(proc.pid)
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        try:
            while proc.poll() is None:
                if should_kill():
                    process.kill_everything(
                        [proc.pid],
                        grace=self.grace,
                        sweep=self.sweep,
                        owned=[proc.pid],
                        while_waiting=lambda: self._pump(name, output),
                    )
                    proc.wait()
                    break
                for fd, _event in poller.poll(100 if pidfd is not None else 20):
                    if fd == self._read_fd:
                        self._pump(name, output)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        # Everything the step wrote before it exited is in the pipe now.
        self._pump(name, output, reads=256)
        return exit_code(proc.returncode)
