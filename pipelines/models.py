"""Pipelines, their jobs, events, secrets and API tokens, in Screwdriver's vocabulary."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from pipelines.deploy_keys import wants_deploy_key
from scm.base import RepoRef
from scm.clients import scm_of_context
from scm.models import ScmRole


class PipelineQuerySet(models.QuerySet["Pipeline"]):
    def public(self) -> PipelineQuerySet:
        """Pipelines anyone signed in may read: `Pipeline.is_public` as a filter."""
        by_setting = Q(settings__public=True)
        unset = ~Q(settings__has_key="public") & (
            Q(scm_repo__private=False) | ~Q(scm_repo__has_key="private")
        )
        return self.filter(by_setting | unset)

    def readable_by(self, user: Any) -> PipelineQuerySet:
        """Public pipelines plus those the person holds a role on (all of them for superusers).

        A role is a local PipelinePermission or one the SCM gave and `scm.rights` recorded.
        """
        if getattr(user, "is_superuser", False):
            return self.all()
        user_id = int(user.pk or 0)
        roles = PipelinePermission.objects.filter(user_id=user_id).values("pipeline_id")
        scm_roles = (
            ScmRole.objects.fresh().filter(user_id=user_id).exclude(role="").values("pipeline_id")
        )
        return (
            self.filter(pk__in=self.public().values("pk"))
            | self.filter(pk__in=roles)
            | self.filter(pk__in=scm_roles)
        )


class Pipeline(models.Model):
    """A repository branch whose screwdriver.yaml defines jobs and a workflow."""

    class State(models.TextChoices):
        ACTIVE = "ACTIVE"
        INACTIVE = "INACTIVE"
        DELETING = "DELETING"

    name = models.CharField(max_length=128)
    scm_uri = models.CharField(max_length=512, unique=True)
    scm_context = models.CharField(max_length=128, default="local")
    scm_repo = models.JSONField(default=dict)
    checkout_url = models.CharField(max_length=1024)
    root_dir = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    admins = models.JSONField(default=dict)
    workflow_graph = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    parameters = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    state_changer = models.CharField(max_length=128, blank=True, default="")
    state_change_time = models.DateTimeField(null=True, blank=True)
    state_change_message = models.CharField(max_length=512, blank=True, default="")
    # Screwdriver's pipeline settings (public, aliasName, groupedEvents, ...) and badges.
    settings = models.JSONField(default=dict, blank=True)
    badges = models.JSONField(default=dict, blank=True)
    last_event = models.ForeignKey(
        "Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The branch head we last started an event for; the hook and the poller both move it with
    # a conditional update, so one push makes one event.
    last_seen_sha = models.CharField(max_length=40, blank=True, default="")
    hook_installed = models.BooleanField(default=False)
    # External config (Screwdriver's configPipelineId): a child pipeline runs the jobs of its
    # parent's screwdriver.yaml on its own repository; the parent's `childPipelines` list
    # creates, updates and deactivates it.
    config_pipeline = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_pipelines"
    )
    # The parent's `childPipelines` at its last sync at the branch head (Screwdriver's field).
    child_pipelines_config = models.JSONField(default=dict, blank=True)
    # `subscribe.scmUrls` resolved: [{"scmUri": ..., "actions": ["commit", "pr"]}]; a push to
    # one of those repositories starts this pipeline's `~subscribe` jobs.
    subscribed_scm_urls = models.JSONField(default=list, blank=True)

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        # settings.public decides when set; otherwise a repository is public unless private.
        public = (self.settings or {}).get("public")
        if isinstance(public, bool):
            return public
        return (self.scm_repo or {}).get("private") is not True

    def role_of(self, user: Any) -> str | None:
        """The person's role here (superusers admin, anyone signed in pulls a public one).

        The higher of the local role and the one the SCM gave (recorded by `scm.rights`, which
        the request path refreshes first: a model method does no network I/O).
        """
        if not getattr(user, "is_authenticated", False) or not isinstance(user.pk, int):
            return None
        if user.is_superuser:
            return PipelinePermission.Role.ADMIN
        held = list(
            PipelinePermission.objects.filter(pipeline=self, user=user).values_list(
                "role", flat=True
            )
        )
        # Only SCM pipelines have SCM roles: local ones skip the query.
        if self.scm_context != "local":
            held += (
                ScmRole.objects.fresh()
                .filter(pipeline=self, user=user)
                .values_list("role", flat=True)
            )
        best = max(held, key=PipelinePermission.rank, default="")
        return best or (PipelinePermission.Role.PULL if self.is_public else None)

    def has_right(self, user: Any, role: str) -> bool:
        """Whether the user holds `role` (pull, push or admin) or a higher one here."""
        held = self.role_of(user)
        return held is not None and PipelinePermission.rank(held) >= PipelinePermission.rank(role)

    def is_admin(self, user: Any) -> bool:
        return self.has_right(user, PipelinePermission.Role.ADMIN)

    @property
    def uses_deploy_key(self) -> bool:
        """Whether its builds clone with its deploy key over SSH (docs/scm.md)."""
        return self.scm_context != "local" and wants_deploy_key(
            self.annotations, enabled=settings.SD_DEPLOY_KEYS
        )

    def deploy_key_in_use(self) -> DeployKey | None:
        """The deploy key its builds clone with, when it uses one and has it."""
        if not self.uses_deploy_key:
            return None
        return DeployKey.objects.filter(pipeline=self).first()

    def repo_ref(self) -> RepoRef:
        """Where the pipeline's code is: repository, branch and root directory."""
        return scm_of_context(self.scm_context).stored_ref(self.checkout_url)

    def may_feed(self, other: Pipeline) -> bool:
        """Whether this pipeline's builds may start ``other``'s jobs and hand them their meta.

        Anyone may write ``~sd@ID:job`` in their file: a private pipeline feeds only pipelines
        whose creator may read it, so naming it cannot pull its meta into a stranger's build.
        """
        return self.pk == other.pk or self.is_public or self.has_right(other.creator, "pull")


class Job(models.Model):
    """One job of a pipeline; its permutations are the parsed config at the latest sync."""

    class State(models.TextChoices):
        ENABLED = "ENABLED"
        DISABLED = "DISABLED"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=110)
    description = models.CharField(max_length=100, blank=True, default="")
    permutations = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ENABLED)
    state_changer = models.CharField(max_length=128, blank=True, default="")
    state_change_time = models.DateTimeField(null=True, blank=True)
    state_change_message = models.CharField(max_length=512, blank=True, default="")
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="job_name_unique_in_pipeline")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.name}"


# Who the periodic build scheduler's events say created them, as Screwdriver names it.
SCHEDULER_USERNAME = "sd:scheduler"


class Event(models.Model):
    """One trigger of a pipeline: a sha, a snapshot of its workflow graph and job configs."""

    class Status(models.TextChoices):
        UNKNOWN = "UNKNOWN"
        CREATED = "CREATED"
        IN_PROGRESS = "IN_PROGRESS"
        SUCCESS = "SUCCESS"
        FAILURE = "FAILURE"
        ABORTED = "ABORTED"

    class Type(models.TextChoices):
        PIPELINE = "pipeline"
        PR = "pr"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="events")
    parent_event = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    group_event = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.PIPELINE)
    cause_message = models.CharField(max_length=512, blank=True, default="")
    commit = models.JSONField(default=dict)
    creator = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    sha = models.CharField(max_length=40)
    config_pipeline_sha = models.CharField(max_length=40, blank=True, default="")
    start_from = models.CharField(max_length=128)
    # The jobs a restart of several jobs at once ran first (startFrom "~failed"); empty when
    # `start_from` alone says where the event started.
    restart_jobs = models.JSONField(default=list, blank=True)
    base_branch = models.CharField(max_length=255, blank=True, default="")
    pr_num = models.IntegerField(null=True, blank=True)
    pr = models.JSONField(default=dict, blank=True)
    meta = models.JSONField(default=dict)
    workflow_graph = models.JSONField(default=dict)
    # The parsed jobs of screwdriver.yaml at this sha: builds run the config of their commit.
    job_configs = models.JSONField(default=dict)
    config_errors = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.UNKNOWN)
    # What started an event of another pipeline's trigger (`~sd@ID:job`): that pipeline's
    # build, and `{pipelineId: {eventId, jobs: {name: buildId}}}` of the remote jobs it heard of.
    parent_build = models.ForeignKey(
        "builds.Build", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent_builds = models.JSONField(default=dict, blank=True)
    # An event a push to a subscribed repository started (`~subscribe`): that commit's sha and
    # page, as Screwdriver's subscribedConfigSha and subscribedSourceUrl.
    subscribed_event = models.BooleanField(default=False)
    subscribed_config_sha = models.CharField(max_length=40, blank=True, default="")
    subscribed_source_url = models.CharField(max_length=1024, blank=True, default="")
    # The webhook delivery that started it ("github:<delivery id>"): a delivery handled again
    # after its worker died finds this event instead of starting a second one.
    # NULL rather than "": events that no delivery started never meet in the constraint.
    delivery_key = models.CharField(  # noqa: DJ001
        max_length=200, null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["pipeline", "-id"], name="event_list_of_pipeline")]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "delivery_key"], name="one_event_per_delivery_per_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"event {self.pk} of pipeline {self.pipeline_id}"

    @property
    def is_pull_request(self) -> bool:
        """Whether this is a pull request's event, restarted under the pull request rules."""
        return self.type == self.Type.PR and bool(self.pr_num)

    @property
    def label(self) -> str:
        """The `label` its builds set in meta (Screwdriver shows it on the event), or ""."""
        value = (self.meta or {}).get("label")
        if value is None or isinstance(value, dict | list):
            return ""
        return str(value).lower() if isinstance(value, bool) else str(value)

    @property
    def is_scheduled(self) -> bool:
        """Whether the periodic build scheduler started this event."""
        return (self.creator or {}).get("username") == SCHEDULER_USERNAME


class Stage(models.Model):
    """A named group of a pipeline's jobs, with its setup and teardown jobs (`stages:`)."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=110)
    description = models.CharField(max_length=256, blank=True, default="")
    job_ids = models.JSONField(default=list)
    setup = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    teardown = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["pipeline_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "name"], name="stage_name_unique_in_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:stage@{self.name}"


class Trigger(models.Model):
    """A remote edge: `dest` (a job of ``pipeline``) requires `src` (a job of another pipeline)."""

    # The pipeline whose config declared the edge: its job sync rewrites its rows.
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="triggers")
    src = models.CharField(max_length=128)
    dest = models.CharField(max_length=128)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["src", "dest"], name="trigger_src_dest_unique")
        ]
        # A finished build finds the pipelines waiting on it with one lookup by `src`.
        indexes = [models.Index(fields=["src"], name="trigger_dependants_of_job")]

    def __str__(self) -> str:
        return f"{self.src} -> {self.dest}"


class Secret(models.Model):
    """A pipeline secret; the value is encrypted at rest and reaches only builds."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64)
    encrypted_value = models.TextField()
    allow_in_pr = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "name"], name="secret_name_unique_in_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.name}"


class DeployKey(models.Model):
    """A pipeline's SSH deploy key: the public half for the repository, the private half
    encrypted at rest like a secret, handed only to a build's launcher for its clone."""

    pipeline = models.OneToOneField(Pipeline, on_delete=models.CASCADE, related_name="deploy_key")
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=64)
    encrypted_private_key = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.pipeline_id}:{self.fingerprint}"


class TokenQuerySet(models.QuerySet["Token"]):
    def matching(self, value: str) -> TokenQuerySet:
        return self.filter(hash=Token.hash_value(value))


class SignInGeneration(models.Model):
    """How many times a person's JWTs were revoked; a user JWT carries the number it had.

    A counter rather than a time: a JWT's `iat` is in whole seconds, so one issued in the
    second of a sign-out could not be told from one issued just before it.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_in_generation"
    )
    generation = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.generation}"


class Token(models.Model):
    """An API token of a user or of a pipeline; only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sd_tokens",
    )
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=256, blank=True, default="")
    hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    objects = TokenQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, pipeline__isnull=True)
                    | Q(user__isnull=True, pipeline__isnull=False)
                ),
                name="token_belongs_to_a_user_or_a_pipeline",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_value(value: str) -> str:
        # Tokens are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
        return hashlib.sha256(value.encode()).hexdigest()


class PipelinePermission(models.Model):
    """A person's rights on a pipeline, in Screwdriver's three levels (SCM pipelines map theirs)."""

    class Role(models.TextChoices):
        PULL = "pull"
        PUSH = "push"
        ADMIN = "admin"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pipeline_permissions"
    )
    role = models.CharField(max_length=5, choices=Role.choices)
    granted_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline_id", "user_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "user"], name="one_role_per_user_per_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} on {self.pipeline_id}"

    @staticmethod
    def rank(role: str) -> int:
        """Pull < push < admin; each right includes the ones below it."""
        return {"pull": 1, "push": 2, "admin": 3}.get(role, 0)


class Template(models.Model):
    """One published version of a job template (`namespace/name@version`)."""

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    version = models.CharField(max_length=16)
    description = models.CharField(max_length=256, blank=True, default="")
    maintainer = models.CharField(max_length=256, blank=True, default="")
    # The template's job config: image(s), steps, environment, secrets, order, ...
    config = models.JSONField(default=dict)
    images = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=list, blank=True)
    # The pipeline whose builds publish it: the first publisher's pipeline owns the name.
    # Templates added in admin have none; only a server admin manages those.
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="templates"
    )
    # Set by a server admin on the latest version; later versions inherit it (Screwdriver).
    trusted = models.BooleanField(default=False)
    # The version published most recently at the highest major.minor (Screwdriver's `latest`).
    latest = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace", "name", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "name", "version"], name="template_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.version}"

    @property
    def full_name(self) -> str:
        """``namespace/name``, as a path and a screwdriver.yaml name it."""
        return f"{self.namespace}/{self.name}"


class TemplateTag(models.Model):
    """A named pointer (`latest`, `stable`) to one version of a template."""

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    tag = models.CharField(max_length=30)
    version = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True, null=True)

    class Meta:
        ordering = ["namespace", "name", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name", "tag"], name="template_tag_unique")
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.tag} -> {self.version}"


class Command(models.Model):
    """One published version of a build command (`namespace/name@version`), run by `sd-cmd`."""

    class Format(models.TextChoices):
        BINARY = "binary"
        HABITAT = "habitat"
        DOCKER = "docker"

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    version = models.CharField(max_length=16)
    description = models.CharField(max_length=256, blank=True, default="")
    maintainer = models.CharField(max_length=256, blank=True, default="")
    format = models.CharField(max_length=16, choices=Format.choices)
    # The format's section of the spec: {"file"} for binary, {"mode", "package", "command",
    # "file"?} for habitat, {"image", "command"?} for docker.
    spec = models.JSONField(default=dict, blank=True)
    usage = models.CharField(max_length=4096, blank=True, default="")
    # Where the uploaded binary lives in the outputs storage (empty for docker and remote habitat).
    binary_name = models.CharField(max_length=300, blank=True, default="")
    binary_size = models.BigIntegerField(default=0)
    # The first publisher's pipeline owns the name, as for templates.
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="commands"
    )
    trusted = models.BooleanField(default=False)
    latest = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace", "name", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "name", "version"], name="command_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.version}"

    @property
    def full_name(self) -> str:
        """``namespace/name``, as `sd-cmd exec` names it."""
        return f"{self.namespace}/{self.name}"


class CommandTag(models.Model):
    """A named pointer (`latest`, `stable`) to one version of a command."""

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    tag = models.CharField(max_length=30)
    version = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["namespace", "name", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name", "tag"], name="command_tag_unique")
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.tag} -> {self.version}"


class PipelineTemplate(models.Model):
    """A pipeline template's name and owner (Screwdriver's templateMeta of type PIPELINE)."""

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    maintainer = models.CharField(max_length=64, blank=True, default="")
    # The pipeline whose builds publish it: the first publisher's pipeline owns the name.
    pipeline = models.ForeignKey(
        Pipeline,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pipeline_templates",
    )
    latest_version = models.CharField(max_length=16, blank=True, default="")
    trusted_since_version = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["namespace", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "name"], name="pipeline_template_name_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class PipelineTemplateVersion(models.Model):
    """One published version of a pipeline template: its whole config and workflow graph."""

    template = models.ForeignKey(
        PipelineTemplate, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField(max_length=16)
    description = models.CharField(max_length=256, blank=True, default="")
    # Stored as publishing parses it: `shared` laid into every job.
    config = models.JSONField(default=dict)
    workflow_graph = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template_id", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "version"], name="pipeline_template_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template}@{self.version}"


class PipelineTemplateTag(models.Model):
    """A named pointer (`latest`, `stable`) to one version of a pipeline template."""

    template = models.ForeignKey(PipelineTemplate, on_delete=models.CASCADE, related_name="tags")
    tag = models.CharField(max_length=30)
    version = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template_id", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["template", "tag"], name="pipeline_template_tag_unique")
        ]

    def __str__(self) -> str:
        return f"{self.template}@{self.tag} -> {self.version}"


class Collection(models.Model):
    """A person's named list of pipelines, shown as a tab of the home page."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections"
    )
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=256, blank=True, default="")
    pipelines = models.ManyToManyField(Pipeline, related_name="collections", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="collection_name_unique_per_user")
        ]

    def __str__(self) -> str:
        return self.name
