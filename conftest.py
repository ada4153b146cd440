"""Shared fixtures: real git repositories, the real worker and the real launcher over HTTP."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import override_settings

from screwdriver_site.outputs import storage_settings

GIT = [
    "git",
    "-c",
    "user.name=Test User",
    "-c",
    "user.email=test@example.com",
    "-c",
    "init.defaultBranch=main",
]
BASE_DIR = Path(__file__).resolve().parent

# What a test needs to reach the test database, directly or through its fixtures
# (pytest-django's live server asks for `transactional_db` only once it runs).
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `nodb` the tests that never open the test database (parser, launcher, clients):
    the PostgreSQL and MariaDB suites leave them to `make test`, as they cannot differ there.

    Tests marked `long` (minutes each) go first, so that the xdist workers start them at once
    rather than finishing the run with them alone."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("django_db") is None and not fixtures & DATABASE_FIXTURES:
            item.add_marker(pytest.mark.nodb)
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def install_npm_packages(directory: Path, *, what: str, skip_on_failure: bool = True) -> Path:
    """`npm ci` a pinned oracle folder once; skip when Node is missing.

    Parallel test workers share the folder: one installs, the others wait on the lock.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"node and npm are needed for {what}")
    installed = directory / "node_modules" / ".sd-installed"
    with open(directory / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            try:
                subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=directory,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                if not skip_on_failure:
                    raise
                pytest.skip(f"could not install {what}: {exc}")
            installed.touch()
    return directory


@pytest.fixture(scope="session")
def data_schema() -> Path:
    """Install the pinned screwdriver-data-schema once; skip only when Node is missing."""
    return install_npm_packages(
        BASE_DIR / "oracle" / "data-schema", what="the data-schema oracle", skip_on_failure=False
    )


def verdicts(oracle: Path, items: list[tuple[str, Any]]) -> list[str | None]:
    """What Screwdriver's data-schema models say of each (model, object): None when it passes."""
    payload = json.dumps([{"model": model, "object": obj} for model, obj in items])
    done = subprocess.run(
        ["node", str(oracle / "validate.js")],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _why_no_sandbox() -> str | None:
    from executors.launcher.sandbox import probe

    return probe()


_NO_SANDBOX = _why_no_sandbox()
# Pull requests run on the local executor only in a sandbox: a test that runs one needs it.
needs_sandbox = pytest.mark.skipif(
    _NO_SANDBOX is not None,
    reason=f"pull requests build only in a sandbox, and none can start here: {_NO_SANDBOX}",
)


def run_git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
    out = subprocess.run(
        [*GIT, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


@dataclass
class GitRepo:
    """A bare repository plus a working clone to commit and push from."""

    bare: Path
    work: Path
    branch: str = "main"
    pushes: list[str] = field(default_factory=list)

    @property
    def checkout_url(self) -> str:
        return f"{self.bare}#{self.branch}"

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        run_git("add", "-A", cwd=self.work)
        run_git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        return run_git("rev-parse", "HEAD", cwd=self.work)

    def push(self, files: dict[str, str] | None = None, message: str = "change") -> str:
        sha = self.commit(files or {}, message)
        run_git("push", "-q", "origin", f"HEAD:{self.branch}", cwd=self.work)
        self.pushes.append(sha)
        return sha


@pytest.fixture(autouse=True, scope="session")
def static_files_on_demand() -> Iterator[None]:
    """WhiteNoise looks a static file up when it is asked for, as in development.

    Otherwise it indexes every static file each time a handler loads its middleware, and the
    test client loads them once per client: most of a request's time in the API tests. What
    production serves is unchanged; servers the tests start in other processes keep the index.
    """
    with override_settings(WHITENOISE_AUTOREFRESH=True):
        yield


@pytest.fixture(autouse=True)
def fast_password_hasher(settings: Any) -> None:
    """Passwords made and checked in this process use a quick hash.

    Django's default hasher takes most of a second on a shared machine; tests that sign in need
    a password to match, not to be hard to guess. A module whose passwords another process
    checks (a server the test started) overrides this fixture to keep the default.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def local_repo_roots(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests keep their repositories under pytest's temporary folder: allow it, as an operator
    allows a folder of repositories with SD_LOCAL_REPO_ROOTS."""
    settings.SD_LOCAL_REPO_ROOTS = [str(tmp_path_factory.getbasetemp())]


_outputs_counter = iter(range(1, 1 << 62))


@pytest.fixture(autouse=True)
def outputs_folder(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test stores build outputs (artifacts, caches) in a folder of its own, made when
    the first file is saved."""
    folder = tmp_path_factory.getbasetemp() / "outputs" / str(next(_outputs_counter))
    settings.STORAGES = {
        **django_settings.STORAGES,
        "outputs": storage_settings("", folder, {}),
    }
    return folder


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """An S3-compatible server (moto's) on 127.0.0.1, for the session; yields its URL."""
    server_module = pytest.importorskip("moto.server", reason="pip install moto[server]")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


_buckets = iter(range(1, 1 << 62))


@pytest.fixture
def s3_outputs(settings: Any, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Build outputs go to a new bucket on the S3-compatible server; yields SD_STORAGE_URL."""
    import boto3

    bucket = f"sd-outputs-{os.getpid()}-{next(_buckets)}"
    keys = {"SD_STORAGE_ACCESS_KEY": "testing", "SD_STORAGE_SECRET_KEY": "testing"}
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/outputs?endpoint_url={s3_server}&region=us-east-1&addressing_style=path"
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {
        **django_settings.STORAGES,
        "outputs": storage_settings(url, Path("/nonexistent"), keys),
    }
    return url


# --- the people of the tests ----------------------------------------------------------------
# The pipelines' owner (alice: the admin of every pipeline made for her), a member (bob: signed
# in, no role on her pipelines) and an outsider (carol: an account that was disabled).

OWNER_PASSWORD = "pw-alice-123"
MEMBER_PASSWORD = "pw-bob-12345"


@pytest.fixture
def owner(db: None) -> User:
    """alice: she creates the pipelines of a test, so she is their admin."""
    return User.objects.create_user("alice", password=OWNER_PASSWORD, first_name="Alice")


@pytest.fixture
def member(db: None) -> User:
    """bob: signed in, with no role on alice's pipelines."""
    return User.objects.create_user("bob", password=MEMBER_PASSWORD)


@pytest.fixture
def outsider(db: None) -> User:
    """carol: her account was disabled, so nothing she holds lets her in."""
    return User.objects.create_user("carol", password="pw-carol-123", is_active=False)


@pytest.fixture
def admin_client(client: Client, owner: User) -> Client:
    """alice, signed in: the admin of every pipeline made for her.

    This replaces pytest-django's fixture of the same name, a server admin's client.
    """
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(member: User) -> Client:
    """bob, signed in, with no role on any pipeline."""
    other = Client()
    other.force_login(member)
    return other


@pytest.fixture(scope="session")
def repo_templates() -> dict[tuple[str, ...], tuple[Path, str]]:
    """Repositories `make_repo` built in this test process, by name and files: folder and sha."""
    return {}


@pytest.fixture
def make_repo(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    repo_templates: dict[tuple[str, ...], tuple[Path, str]],
) -> Callable[..., GitRepo]:
    """Create a bare repository whose first commit holds `files` (a screwdriver.yaml usually).

    Many tests start from the same files: git builds each first commit once per test process,
    and each test gets a copy of it, so the commit's sha is the same every time.
    """

    def build(root: Path, files: dict[str, str], name: str) -> GitRepo:
        bare = root / "git" / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        run_git("init", "-q", "--bare", str(bare), cwd=root)
        work = root / "work" / name
        run_git("clone", "-q", str(bare), str(work), cwd=root)
        repo = GitRepo(bare=bare, work=work)
        repo.push(files, "initial commit")
        return repo

    def make(files: dict[str, str], name: str = "app") -> GitRepo:
        key = (name, *(part for item in sorted(files.items()) for part in item))
        if key not in repo_templates:
            folder = tmp_path_factory.mktemp("repo-template")
            repo_templates[key] = (folder, build(folder, files, name).pushes[0])
            # git's sample hooks are most of a repository's files and no test runs them.
            for sample in folder.glob("**/hooks/*.sample"):
                sample.unlink()
        template, sha = repo_templates[key]
        bare = tmp_path / "git" / f"{name}.git"
        work = tmp_path / "work" / name
        shutil.copytree(template / "git" / f"{name}.git", bare, symlinks=True)
        shutil.copytree(template / "work" / name, work, symlinks=True)
        # The copied clone still pushes to the template: point its origin at its own bare copy.
        config = work / ".git" / "config"
        config.write_text(config.read_text().replace(str(template / "git"), str(tmp_path / "git")))
        repo = GitRepo(bare=bare, work=work)
        repo.pushes.append(sha)
        return repo

    return make


def database_url() -> str:
    """A URL for the test database, so processes we start use the same one."""
    s = connection.settings_dict
    engine = s["ENGINE"].rsplit(".", 1)[-1]
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[engine]
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"{scheme}://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Stack:
    """The API (pytest-django's live server), its data dir and a real django-q2 worker."""

    url: str
    data_dir: Path
    env: dict[str, str]
    worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
        self.worker = subprocess.Popen(
            [sys.executable, "manage.py", "sd_worker"],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.worker

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill_worker()

    def kill_leftovers(self) -> None:
        """End any launcher or step a test left running in this stack's workspaces."""
        marker = str(self.data_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if (
                    marker in (entry / "environ").read_bytes()
                    or marker in (entry / "cmdline").read_bytes()
                ):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue


@pytest.fixture
def stack_env() -> dict[str, str]:
    """More environment for the worker of `stack`: a test module overrides this fixture."""
    return {}


@pytest.fixture
def stack(
    live_server: Any, settings: Any, tmp_path: Path, stack_env: dict[str, str]
) -> Iterator[Stack]:
    """A running server and worker on the test database; builds run in `tmp_path`."""
    data_dir = tmp_path / "sd-data"
    data_dir.mkdir()
    settings.SD_API_URL = live_server.url
    settings.SD_UI_URL = live_server.url
    settings.SD_DATA_DIR = data_dir
    settings.SD_WORKSPACES_DIR = data_dir / "workspaces"
    settings.SD_BUILD_LEASE_SECONDS = 4.0
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url(),
        "SD_DATA_DIR": str(data_dir),
        "SD_SECRET_KEY": django_settings.SECRET_KEY,
        "SD_API_URL": live_server.url,
        "SD_BUILD_LEASE_SECONDS": "4",
        "SD_QUEUE_POLL_SECONDS": "0.05",
        "SD_LOG_LEVEL": "WARNING",
        **stack_env,
    }
    s = Stack(url=live_server.url, data_dir=data_dir, env=env)
    s.start_worker()
    yield s
    s.stop_worker()
    s.kill_leftovers()


REDIS_URL = os.environ.get("SD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_queue(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """django-q2 on its Redis broker, under a queue name of this test's own.

    This process enqueues into Redis; the returned environment (SD_REDIS_URL, SD_QUEUE_NAME)
    makes a worker we start read the same list. Parallel tests share the Redis server and
    never each other's keys, which are all deleted afterwards.
    """
    if not _redis_reachable():
        pytest.skip(f"no Redis at {REDIS_URL} for the Redis broker tests: start redis-server")
    import redis
    from django_q.conf import Conf

    name = f"sd-test-{os.getpid()}-{time.monotonic_ns()}"
    settings.REDIS_URL = REDIS_URL
    settings.SD_QUEUE_BROKER = "redis"
    settings.SD_QUEUE_NAME = name
    # django-q2 reads its settings once, into Conf: the switch a worker makes at start.
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    monkeypatch.setattr(Conf, "PREFIX", name)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name)
    yield {"SD_REDIS_URL": REDIS_URL, "SD_QUEUE_NAME": name}
    client = redis.from_url(REDIS_URL)
    for pattern in (f"django_q:{name}:*", f"{name}:*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
