"""Settings for the Screwdriver server, read from the environment.

With no environment at all this gives the embedded default: SQLite under SD_DATA_DIR, the
django-q2 ORM broker, the in-memory channel layer and the local-process executor.
Every variable is listed in .env.example.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from screwdriver_site.data_dir import SERVER_UMASK, private_dir, private_file
from screwdriver_site.env import env_bool, env_float, env_int, env_list, env_pairs, env_str
from screwdriver_site.outputs import storage_settings

BASE_DIR = Path(__file__).resolve().parent.parent

SD_MODE = env_str("SD_MODE", "embedded")  # "embedded" or "production"
if SD_MODE not in {"embedded", "production"}:
    raise ImproperlyConfigured(f"SD_MODE must be 'embedded' or 'production', got {SD_MODE!r}")
PRODUCTION = SD_MODE == "production"

# The data folder holds the database, the secret key and every build's workspace: only this
# user may read it, and whatever the server writes into it is private as it is created.
os.umask(SERVER_UMASK)
SD_DATA_DIR = private_dir(Path(env_str("SD_DATA_DIR", str(BASE_DIR / "var"))).resolve())
SD_WORKSPACES_DIR = SD_DATA_DIR / "workspaces"


def _secret_key() -> str:
    key = env_str("SD_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SD_SECRET_KEY must be set when SD_MODE=production.")
    # Embedded mode keeps a generated key beside the database so sessions, tokens and
    # encrypted secrets survive a restart.
    path = SD_DATA_DIR / "secret_key"
    private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Django's debug pages show code and settings: only for a developer who asks for them.
DEBUG = env_bool("SD_DEBUG", False)
DEFAULT_EXCEPTION_REPORTER_FILTER = "screwdriver_site.errors.CleansingFilter"
DEFAULT_EXCEPTION_REPORTER = "screwdriver_site.errors.CleansingReporter"
ALLOWED_HOSTS = env_list("SD_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("SD_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "screwdriver_site.apps.SiteConfig",
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "channels",
    "axes",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.gitlab",
    "pipelines",
    "builds",
    "executors",
    "scm",
    "notifications",
]

MIDDLEWARE = [
    # First: what follows routes on the path the client sent (see the module).
    "screwdriver_site.encoded_paths.EncodedSlashMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "screwdriver_site.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into screwdriver_site.lockout's answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "screwdriver_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "screwdriver_site.wsgi.application"
ASGI_APPLICATION = "screwdriver_site.asgi.application"

# Datastore: DATABASE_URL picks SQLite (default), PostgreSQL or MySQL/MariaDB.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{SD_DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
_engine = DATABASES["default"]["ENGINE"]
if _engine == "django.db.backends.sqlite3":
    # Django's backend, with each process's closed connections kept to reuse: a new one
    # reads the whole schema first (screwdriver_site/pooled_sqlite3/base.py).
    _engine = DATABASES["default"]["ENGINE"] = "screwdriver_site.pooled_sqlite3"
    # SQLite gives its -wal and -shm files the database file's mode: create it 0600 first.
    _sqlite_file = Path(str(DATABASES["default"]["NAME"]))
    if _sqlite_file.name not in ("", ":memory:") and _sqlite_file.parent.is_dir():
        private_file(_sqlite_file)
    # The API, the worker and the ASGI server write concurrently: WAL lets readers go on
    # while one writes (turned on once a process: screwdriver_site/sqlite_wal.py), and
    # IMMEDIATE transactions take the write lock up front so a read-then-write transaction
    # never fails half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA synchronous=NORMAL;",
    }
elif _engine == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"charset": "utf8mb4", "isolation_level": "read committed"}
    )
# Tests run the worker and launchers as separate processes, so even SQLite's test database
# is a file they can open (one per test process, so parallel runs never share one).
_test_name = env_str("SD_TEST_DATABASE_NAME") or (
    str(SD_DATA_DIR / f"test-db-{os.getpid()}.sqlite3")
    if _engine == "screwdriver_site.pooled_sqlite3"
    else None
)
DATABASES["default"]["TEST"] = {"NAME": _test_name}
if _engine == "django.db.backends.mysql":
    DATABASES["default"]["TEST"].update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_bin"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pipelines:list"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out sign-in before any password is checked (see below).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Sign-in with GitHub and GitLab (django-allauth). Local accounts keep the plain /login/ form;
# allauth makes accounts only through an SCM, and keeps no token itself: scm.adapters stores
# the SCM token encrypted (scm.models.ScmAccount).
ACCOUNT_ADAPTER = "scm.adapters.LocalAccountAdapter"
SOCIALACCOUNT_ADAPTER = "scm.adapters.ScmSocialAccountAdapter"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
# An SCM account never takes over a local one by a shared address: they stay two accounts.
ACCOUNT_UNIQUE_EMAIL = False

# --- Failed sign-ins are rate-limited (django-axes) ----------------------------------------
# Every password sign-in (/login/, /admin/login/, POST /v4/auth/login) counts failures per
# username and client address, in the database (so every process of every host shares them).
# At the limit that pair is refused (429) for the cool-off; another person at the same address
# is not. `manage.py axes_reset` (or Django admin's "Access attempts") lifts a lockout now.
SD_LOGIN_FAILURE_LIMIT = env_int("SD_LOGIN_FAILURE_LIMIT", 5)  # 0 turns the limit off
SD_LOGIN_COOLOFF_MINUTES = env_float("SD_LOGIN_COOLOFF_MINUTES", 15.0)
# What a lockout is keyed on: "username+ip" (default), "username" or "ip".
SD_LOGIN_LOCKOUT_KEY = env_str("SD_LOGIN_LOCKOUT_KEY", "username+ip")
_lockout_keys: dict[str, list[Any]] = {
    "username+ip": [["username", "ip_address"]],
    "username": ["username"],
    "ip": ["ip_address"],
}
if SD_LOGIN_LOCKOUT_KEY not in _lockout_keys:
    raise ImproperlyConfigured(
        f"SD_LOGIN_LOCKOUT_KEY must be one of {', '.join(_lockout_keys)}, "
        f"got {SD_LOGIN_LOCKOUT_KEY!r}"
    )
AXES_ENABLED = SD_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(SD_LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(minutes=SD_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = _lockout_keys[SD_LOGIN_LOCKOUT_KEY]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_RESET_ON_SUCCESS = True
# A try during the lockout does not restart it, so the wait the answer names holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "screwdriver_site.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Failures are kept for the lockout; successful sign-ins are not logged in a table that grows.
AXES_DISABLE_ACCESS_LOG = True
# --- end of failed sign-ins -----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = private_dir(SD_DATA_DIR / "static")
WHITENOISE_USE_FINDERS = True

# Build outputs (artifacts, caches): a private folder under SD_DATA_DIR, or an S3-compatible
# store when SD_STORAGE_URL says so (docs/artifacts.md).
SD_STORAGE_URL = env_str("SD_STORAGE_URL", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "outputs": storage_settings(SD_STORAGE_URL, SD_DATA_DIR / "outputs", dict(os.environ)),
}
# What a build may publish from $SD_ARTIFACTS_DIR: per file, and all its files together. An
# upload past either cap is refused whole (413); the launcher checks both before it sends.
SD_ARTIFACTS_MAX_FILE_BYTES = env_int("SD_ARTIFACTS_MAX_FILE_BYTES", 1024**3)
SD_ARTIFACTS_MAX_BUILD_BYTES = env_int("SD_ARTIFACTS_MAX_BUILD_BYTES", 5 * 1024**3)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "screwdriver_site.api.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "screwdriver_site.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "screwdriver_site.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

# OpenAPI 3 at /v4/swagger.json and Swagger UI at /v4/documentation, from our static files.
SPECTACULAR_SETTINGS = {
    "TITLE": "Screwdriver API",
    "DESCRIPTION": "Screwdriver's /v4 API. Authorization: Bearer with an API token or a JWT "
    "from GET /v4/auth/token. Rights and scopes: docs/api.md.",
    "VERSION": "4",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/v4",
    "SECURITY": [{"bearer": []}],
}

# Guests (a JWT from /v4/auth/login/guest) may read public pipelines; off unless turned on.
SD_GUEST_ACCESS = env_bool("SD_GUEST_ACCESS", False)

# Workers between the API and the engines: short tasks only (a build is a process with a
# lease, not a task), so timeout < retry and a finite number of attempts.
# The queue (django-q2's broker): the database (the embedded default) or, when SD_REDIS_URL is
# set, Redis, which also carries the channel layer. SD_QUEUE_BROKER=orm keeps the database.
REDIS_URL = env_str("SD_REDIS_URL")
SD_QUEUE_BROKER = env_str("SD_QUEUE_BROKER") or ("redis" if REDIS_URL else "orm")
if SD_QUEUE_BROKER not in {"orm", "redis"}:
    raise ImproperlyConfigured(f"SD_QUEUE_BROKER must be 'orm' or 'redis', got {SD_QUEUE_BROKER!r}")
if SD_QUEUE_BROKER == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("SD_QUEUE_BROKER=redis needs SD_REDIS_URL.")
# The queue's name: every API process and worker of one installation shares it; two
# installations on one Redis need two names (the Redis list is django_q:<name>:q).
SD_QUEUE_NAME = env_str("SD_QUEUE_NAME", "screwdriver")
Q_CLUSTER: dict[str, Any] = {
    "name": SD_QUEUE_NAME,
    "workers": env_int("SD_WORKERS", 2),
    "timeout": 60,
    "retry": 90,
    "max_attempts": 3,
    "poll": env_float("SD_QUEUE_POLL_SECONDS", 0.05),
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Tasks",
    # Cron schedules (periodic builds) run in UTC whatever TIME_ZONE says, as in Screwdriver.
    "time_zone": "UTC",
}
if SD_QUEUE_BROKER == "redis":
    # Redis hands a task to one worker and forgets it (no acknowledgement, no retry): a start
    # lost with a dying worker is queued again by the reaper (builds.dispatch.REQUEUE_AFTER).
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The database broker, with a wake-up for the workers on this host when a task is queued:
    # they look at once instead of at their next poll (screwdriver_site/queue_broker.py).
    Q_CLUSTER["broker_class"] = "screwdriver_site.queue_broker.WakingOrmBroker"

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{SD_QUEUE_NAME}:asgi"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Where builds reach the API and people reach the UI.
SD_PORT = env_int("PORT", 8000)
SD_API_URL = env_str("SD_API_URL", f"http://127.0.0.1:{SD_PORT}").rstrip("/")
SD_UI_URL = env_str("SD_UI_URL", SD_API_URL).rstrip("/")
# A worker on a host of its own (`manage.py sd_worker`, docs/scaling.md): it refuses to start
# unless the database, the secret key and SD_API_URL are ones other hosts share and reach.
SD_WORKER_REMOTE = env_bool("SD_WORKER_REMOTE", False)
# The name builds' stats give the machine their launcher ran on (default: the host's name).
SD_HOSTNAME = env_str("SD_HOSTNAME") or socket.gethostname()
# What Prometheus sends as a bearer token to read /metrics; unset, only superusers read it.
SD_METRICS_TOKEN = env_str("SD_METRICS_TOKEN", "")
# Each server process writes how many build pages it streams to this often (and when one
# opens or closes); /metrics counts a process's pages until three of these have passed.
SD_LIVE_HEARTBEAT_SECONDS = env_float("SD_LIVE_HEARTBEAT_SECONDS", 30.0)

# GitHub (GitHub Enterprise: point SD_GITHUB_API_URL at https://HOST/api/v3).
SD_GITHUB_API_URL = env_str("SD_GITHUB_API_URL", "https://api.github.com").rstrip("/")
SD_GITHUB_WEBHOOK_SECRET = env_str("SD_GITHUB_WEBHOOK_SECRET")
# The server's own token for GitHub's REST API until sign-in brings each user's token.
SD_GITHUB_TOKEN = env_str("SD_GITHUB_TOKEN")
# A GitHub App (its id and the PEM file of its private key): when both are set, each build of
# a private repository clones with an installation token of its own, read-only, for that one
# repository, that expires within the hour (docs/scm.md), not with SD_GITHUB_TOKEN.
SD_GITHUB_APP_ID = env_str("SD_GITHUB_APP_ID")
SD_GITHUB_APP_PRIVATE_KEY_FILE = env_str("SD_GITHUB_APP_PRIVATE_KEY_FILE")
# GitLab (self-managed: point SD_GITLAB_URL at https://HOST); no token, no GitLab deliveries.
SD_GITLAB_URL = env_str("SD_GITLAB_URL", "https://gitlab.com").rstrip("/")
SD_GITLAB_WEBHOOK_TOKEN = env_str("SD_GITLAB_WEBHOOK_TOKEN")
SD_GITLAB_TOKEN = env_str("SD_GITLAB_TOKEN")
# What builds of private GitLab projects clone with: a deploy token of their own, made with
# SD_GITLAB_TOKEN (Maintainer) and revoked when the build ends, or the server's token itself.
SD_GITLAB_CLONE_CREDENTIAL = env_str("SD_GITLAB_CLONE_CREDENTIAL", "deploy-token")
if SD_GITLAB_CLONE_CREDENTIAL not in ("deploy-token", "operator-token"):
    raise ImproperlyConfigured(
        "SD_GITLAB_CLONE_CREDENTIAL must be 'deploy-token' or 'operator-token', "
        f"got {SD_GITLAB_CLONE_CREDENTIAL!r}."
    )
# Deploy keys: a pipeline whose screwdriver.yaml says screwdriver.cd/useDeployKey: true gets
# an SSH key pair and its builds clone over SSH with it (docs/scm.md); off unless allowed.
SD_DEPLOY_KEYS = env_bool("SD_DEPLOY_KEYS", False)
# A known_hosts file (read by the server, sent to the launcher) that pins the SSH host keys of
# the SCMs; without it a deploy-key clone does not check the host key, as Screwdriver's.
SD_SSH_KNOWN_HOSTS = env_str("SD_SSH_KNOWN_HOSTS")
SD_WEBHOOK_MAX_BYTES = env_int("SD_WEBHOOK_MAX_BYTES", 2 * 1024 * 1024)

# OAuth apps for sign-in; each provider is offered only when its id and secret are set.
SD_GITHUB_CLIENT_ID = env_str("SD_GITHUB_CLIENT_ID")
SD_GITHUB_CLIENT_SECRET = env_str("SD_GITHUB_CLIENT_SECRET")
SD_GITLAB_CLIENT_ID = env_str("SD_GITLAB_CLIENT_ID")
SD_GITLAB_CLIENT_SECRET = env_str("SD_GITLAB_CLIENT_SECRET")
# How long a person's role read from the SCM counts before it is asked again (seconds).
SD_SCM_RIGHTS_CACHE_SECONDS = env_int("SD_SCM_RIGHTS_CACHE_SECONDS", 300)
# Who may sign up and sign in through GitHub/GitLab: members of these GitHub organizations or
# GitLab groups, or these usernames ("name", or "github:name"/"gitlab:name" for one SCM). Both
# empty: anyone with an account on the configured GitHub/GitLab (scm.allow_list).
SD_SCM_ALLOWED_ORGS = env_list("SD_SCM_ALLOWED_ORGS", [])
SD_SCM_ALLOWED_USERS = env_list("SD_SCM_ALLOWED_USERS", [])
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, Any]] = {}
if SD_GITHUB_CLIENT_ID and SD_GITHUB_CLIENT_SECRET:
    _github_api = urlsplit(SD_GITHUB_API_URL)
    SOCIALACCOUNT_PROVIDERS["github"] = {
        "APPS": [{"client_id": SD_GITHUB_CLIENT_ID, "secret": SD_GITHUB_CLIENT_SECRET}],
        # repo: read private repositories and their permissions; read:org only to check
        # SD_SCM_ALLOWED_ORGS. Hooks and statuses use the server's token, not the person's.
        "SCOPE": ["repo", "user:email"] + (["read:org"] if SD_SCM_ALLOWED_ORGS else []),
    }
    if _github_api.hostname != "api.github.com":
        # GitHub Enterprise signs in on the web host of its API (https://HOST/api/v3).
        SOCIALACCOUNT_PROVIDERS["github"]["GITHUB_URL"] = (
            f"{_github_api.scheme}://{_github_api.netloc}"
        )
if SD_GITLAB_CLIENT_ID and SD_GITLAB_CLIENT_SECRET:
    SOCIALACCOUNT_PROVIDERS["gitlab"] = {
        "APPS": [{"client_id": SD_GITLAB_CLIENT_ID, "secret": SD_GITLAB_CLIENT_SECRET}],
        # Read-only: projects and their members' access levels, groups, the person's profile.
        "SCOPE": ["read_api", "read_user"],
        "GITLAB_URL": SD_GITLAB_URL,
    }
# Stored webhook deliveries are deleted by a daily task once they are this old.
SD_WEBHOOK_RETENTION_DAYS = env_int("SD_WEBHOOK_RETENTION_DAYS", 30)
# Screwdriver's webhooks plugin options: which pull requests build (none, all, branch, fork; an
# "-admin" variant overrides every pipeline's screwdriver.cd/restrictPR), and chainPR's default.
SD_RESTRICT_PR = env_str("SD_RESTRICT_PR", "none")
SD_CHAIN_PR = env_bool("SD_CHAIN_PR", False)

# Builds.
SD_EXECUTOR = env_str("SD_EXECUTOR", "local")
# The executors a screwdriver.yaml may pick with screwdriver.cd/executor (comma-separated);
# SD_EXECUTOR is always allowed, so by default a yaml can pick nothing else.
SD_EXECUTORS = env_list("SD_EXECUTORS", [])
# Local builds run in a bubblewrap sandbox: "auto" where one can start (else trusted builds
# run without and pull requests are refused), "bwrap" always (else no local build starts),
# "none" never (the builds are the operator's own code; pull requests are refused).
SD_LOCAL_SANDBOX = env_str("SD_LOCAL_SANDBOX", "auto")
# A server run by root runs sandboxed steps as this user; more folders to hide from builds.
SD_LOCAL_BUILD_USER = env_str("SD_LOCAL_BUILD_USER", "nobody")
SD_LOCAL_SANDBOX_HIDE = env_list("SD_LOCAL_SANDBOX_HIDE", [])
# "host": sandboxed steps share the machine's network (they fetch dependencies, and reach what
# listens on it, localhost included); "none": a network of their own with nothing in it.
SD_LOCAL_SANDBOX_NETWORK = env_str("SD_LOCAL_SANDBOX_NETWORK", "host")
# Pull requests from forks run on the local executor only when the operator says so.
SD_LOCAL_FORK_PRS = env_bool("SD_LOCAL_FORK_PRS", False)
SD_BUILD_LEASE_SECONDS = env_float("SD_BUILD_LEASE_SECONDS", 30.0)
SD_REAPER_INTERVAL_MINUTES = env_int("SD_REAPER_INTERVAL_MINUTES", 1)
SD_DEFAULT_TIMEOUT_MINUTES = env_float("SD_DEFAULT_TIMEOUT_MINUTES", 90.0)
SD_MAX_TIMEOUT_MINUTES = env_float("SD_MAX_TIMEOUT_MINUTES", 720.0)
SD_LOG_MAX_LINE_BYTES = env_int("SD_LOG_MAX_LINE_BYTES", 64 * 1024)
SD_LOG_MAX_STEP_BYTES = env_int("SD_LOG_MAX_STEP_BYTES", 256 * 1024 * 1024)
# The server's own cap on all the log lines of one build (the step cap above applies too).
SD_LOG_MAX_BUILD_BYTES = env_int("SD_LOG_MAX_BUILD_BYTES", 1024 * 1024 * 1024)
SD_STEP_SHELL = env_str("SD_STEP_SHELL", "/bin/sh")
# The most seconds a stopped build's teardown may ask for (terminationGracePeriodSeconds).
SD_MAX_TERMINATION_GRACE_SECONDS = env_int("SD_MAX_TERMINATION_GRACE_SECONDS", 120)
# While a page watches a build, its launcher sends log lines over one WebSocket (false: HTTP only).
SD_LOG_SOCKET = env_bool("SD_LOG_SOCKET", True)
SD_KEEP_WORKSPACES = env_bool("SD_KEEP_WORKSPACES", False)
# A build cache (screwdriver.yaml's `cache:`) holds at most this many bytes of files, and its
# archive at most this many; a bigger one is not saved (docs/caches.md).
SD_CACHE_MAX_BYTES = env_int("SD_CACHE_MAX_BYTES", 5 * 1024**3)
# Artifacts and caches not written (nor, for caches, read) for this many days are deleted by a
# daily task and by `manage.py sd_prune_outputs`; 0 keeps them forever.
SD_OUTPUTS_RETENTION_DAYS = env_int("SD_OUTPUTS_RETENTION_DAYS", 30)

# Containers and pods carry this label so that a server (and its reaper) only ever touches its
# own; the default is stable per installation and differs between installations.
SD_INSTANCE = env_str("SD_INSTANCE") or (
    "sd-" + hashlib.sha256(f"instance:{SECRET_KEY}".encode()).hexdigest()[:12]
)
# The Docker executor (DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH pick the engine).
SD_DOCKER_PULL = env_str("SD_DOCKER_PULL", "missing")  # missing, always or never
SD_DOCKER_PULL_TIMEOUT_SECONDS = env_float("SD_DOCKER_PULL_TIMEOUT_SECONDS", 45.0)
SD_DOCKER_NETWORK = env_str("SD_DOCKER_NETWORK", "bridge")
SD_DOCKER_USER = env_str("SD_DOCKER_USER")
# Every capability is dropped, then only these come back: what root in an image needs to install
# packages and work in a checkout the server's user owns (CHOWN, DAC_OVERRIDE, FOWNER, FSETID),
# to drop to another user as apt, su and gosu do (SETGID, SETUID), and to end processes that
# did so (KILL: the agent's sweep). All act inside the container only; the launcher never
# follows the build's links (executors/launcher/confined.py), so DAC_OVERRIDE reaches nothing
# of the host. Left out of Docker's defaults: NET_RAW (spoofing other builds on the bridge),
# MKNOD, SYS_CHROOT, SETFCAP, SETPCAP, AUDIT_WRITE, NET_BIND_SERVICE (the engine lets
# containers bind low ports anyway). See docs/launcher-protocol.md.
SD_DOCKER_CAP_ADD = env_list(
    "SD_DOCKER_CAP_ADD",
    ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"],
)
SD_DOCKER_PIDS_LIMIT = env_int("SD_DOCKER_PIDS_LIMIT", 1024)
SD_DOCKER_AGENT_TIMEOUT_SECONDS = env_float("SD_DOCKER_AGENT_TIMEOUT_SECONDS", 60.0)
# The Kubernetes executor: in-cluster credentials, else KUBECONFIG, else SD_K8S_API_URL.
SD_K8S_NAMESPACE = env_str("SD_K8S_NAMESPACE", "default")
SD_K8S_API_URL = env_str("SD_K8S_API_URL")
SD_K8S_TOKEN = env_str("SD_K8S_TOKEN")
SD_K8S_LAUNCHER_IMAGE = env_str("SD_K8S_LAUNCHER_IMAGE", "screwdriver-py:latest")
SD_K8S_IMAGE_PULL_POLICY = env_str("SD_K8S_IMAGE_PULL_POLICY", "IfNotPresent")
SD_K8S_RUN_AS_USER = env_int("SD_K8S_RUN_AS_USER", 1000)
SD_K8S_AGENT_TIMEOUT_SECONDS = env_float("SD_K8S_AGENT_TIMEOUT_SECONDS", 600.0)
SD_K8S_POD_GRACE_SECONDS = env_int("SD_K8S_POD_GRACE_SECONDS", 300)
# The ephemeral storage (a quantity, "100Gi") of a build asking screwdriver.cd/disk: LOW (the
# default) or HIGH; empty: no request or limit, the node's disk as it comes.
SD_K8S_DISK_LOW = env_str("SD_K8S_DISK_LOW")
SD_K8S_DISK_HIGH = env_str("SD_K8S_DISK_HIGH")

# Notifications (a job's `settings.email` and `settings.slack`, docs/notifications.md).
# Email goes through Django's SMTP backend; without SD_SMTP_HOST no email is sent (the build
# page says so). SD_SMTP_STARTTLS upgrades the connection with STARTTLS before any login.
SD_SMTP_HOST = env_str("SD_SMTP_HOST")
SD_SMTP_PORT = env_int("SD_SMTP_PORT", 25)
SD_SMTP_USER = env_str("SD_SMTP_USER")
SD_SMTP_PASSWORD = env_str("SD_SMTP_PASSWORD")
SD_SMTP_STARTTLS = env_bool("SD_SMTP_STARTTLS", False)
SD_SMTP_TIMEOUT_SECONDS = env_float("SD_SMTP_TIMEOUT_SECONDS", 10.0)
SD_EMAIL_FROM = env_str("SD_EMAIL_FROM", "screwdriver@localhost")
# Slack's Web API (chat.postMessage) with a bot token; without one no Slack message is sent.
SD_SLACK_TOKEN = env_str("SD_SLACK_TOKEN")
# Screwdriver's `workspace:channel`: SD_SLACK_TOKEN is the token of the workspace named
# SD_SLACK_DEFAULT_WORKSPACE (the one a bare channel name is in); SD_SLACK_WORKSPACES names
# the others, `name=xoxb-...,other=xoxb-...` (an entry for the default name replaces
# SD_SLACK_TOKEN).
SD_SLACK_DEFAULT_WORKSPACE = env_str("SD_SLACK_DEFAULT_WORKSPACE", "default")
SD_SLACK_WORKSPACES = env_pairs("SD_SLACK_WORKSPACES")
SD_SLACK_API_URL = env_str("SD_SLACK_API_URL", "https://slack.com/api").rstrip("/")
# Also email the commit's author (pushes only, never a pull request's commit) on the statuses
# a job's email settings watch.
SD_NOTIFY_COMMIT_AUTHOR = env_bool("SD_NOTIFY_COMMIT_AUTHOR", False)

# Local git repositories: how often to look for pushes where no hook could be installed.
SD_SCM_POLL_MINUTES = env_int("SD_SCM_POLL_MINUTES", 1)

# Local git repositories people other than superusers may build from: folders whose
# repositories (after symlinks and `..` are resolved) anyone signed in may use. Empty: only
# superusers make pipelines from local paths.
SD_LOCAL_REPO_ROOTS = env_list("SD_LOCAL_REPO_ROOTS", [])

# Create the demo pipeline on first start of `make run`.
SD_DEMO = env_bool("SD_DEMO", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "one_line": {"()": "screwdriver_site.errors.WithoutTraceback"},
        "without_credentials": {"()": "screwdriver_site.errors.WithoutCredentials"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "refusals": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["one_line"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("SD_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Each failed sign-in and each lockout is a warning; the rest of django-axes' chatter not.
        "axes": {"level": "WARNING"},
        # Scanners send bad Host headers all day: one line each, not a traceback.
        "django.security": {"handlers": ["refusals"], "propagate": False},
        # A refused or missing file of a report is logged with its address: not its capability.
        "django.request": {"filters": ["without_credentials"]},
    },
}

# --- Browser security headers -----------------------------------------------------------
# In every mode: no MIME sniffing, no referrer sent to other sites, and a Content-Security-
# Policy on each HTML page (screwdriver_site.csp): our own scripts and styles only, no inline
# ones, no framing. The build page's WebSocket is 'self' too. SD_CSP replaces the policy;
# empty sends none.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env_str("SD_REFERRER_POLICY", "same-origin")
SD_CSP = env_str(
    "SD_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'",
)

# Production is served over HTTPS: cookies only travel over it, and browsers are told (HSTS)
# to use nothing else for a year. Subdomains and the preload list are the operator's choice,
# since they bind every other site of the domain too. Behind a proxy that ends TLS, set
# SD_TRUST_X_FORWARDED_PROTO so a request the proxy received over HTTPS counts as secure.
if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("SD_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SD_SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = env_int("SD_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SD_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("SD_HSTS_PRELOAD", False)
    if env_bool("SD_TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# --- end of browser security headers ---------------------------------------------------------
