"""Webhook deliveries received from SCMs, and what sign-in with an SCM taught us about people.

A WebhookDelivery is kept so that a delivery is acted on only once. An ScmAccount holds a
person's SCM token, encrypted; an ScmRole records the role that token gave them on a pipeline,
so that permission checks (which never do network I/O) can count it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class WebhookDelivery(models.Model):
    """One verified webhook delivery; a unique (scm, delivery id) and (scm, body) refuse replays."""

    class Outcome(models.TextChoices):
        QUEUED = "queued"
        IGNORED = "ignored"
        DONE = "done"
        FAILED = "failed"

    scm = models.CharField(max_length=32)  # "github", "gitlab"
    delivery_id = models.CharField(max_length=128)
    event_name = models.CharField(max_length=64)
    action = models.CharField(max_length=64, blank=True, default="")
    repository = models.CharField(max_length=512, blank=True, default="")
    payload = models.JSONField(default=dict)
    # SHA-256 of the body as signed: a captured delivery sent again under a new delivery id
    # is the same body. Null (not "") for deliveries stored before it was kept, because every
    # database lets NULLs repeat under a unique constraint and MySQL has no partial ones.
    body_sha256 = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When a worker was last handed the delivery, and how many times it has been.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.QUEUED)
    message = models.CharField(max_length=512, blank=True, default="")
    events = models.JSONField(default=list)  # ids of the events this delivery started

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scm", "delivery_id"], name="one_delivery_per_scm_delivery_id"
            ),
            models.UniqueConstraint(
                fields=["scm", "body_sha256"], name="one_delivery_per_scm_body"
            ),
        ]
        # The redelivery sweep looks for QUEUED deliveries handed out long ago.
        indexes = [models.Index(fields=["outcome", "enqueued_at"], name="delivery_stuck_sweep")]

    def __str__(self) -> str:
        return f"{self.scm} {self.event_name} {self.delivery_id}"


class ScmAccount(models.Model):
    """A person's account on one SCM, with their OAuth token encrypted at rest."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scm_accounts"
    )
    scm_context = models.CharField(max_length=128)  # "github:github.com", "gitlab:gitlab.com"
    username = models.CharField(max_length=255)
    encrypted_token = models.TextField()  # Fernet, pipelines.encryption
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "scm_context"], name="one_scm_account_per_user_per_scm"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} on {self.scm_context}"


class ScmRoleQuerySet(models.QuerySet["ScmRole"]):
    def fresh(self) -> ScmRoleQuerySet:
        """Answers recorded within SD_SCM_RIGHTS_CACHE_SECONDS: older ones grant nothing."""
        fresh_after = timezone.now() - timedelta(seconds=settings.SD_SCM_RIGHTS_CACHE_SECONDS)
        return self.filter(checked_at__gt=fresh_after)


class ScmRole(models.Model):
    """The role a person's SCM token gave them on a pipeline when it was last asked."""

    class Role(models.TextChoices):
        NONE = "", "none"
        PULL = "pull"
        PUSH = "push"
        ADMIN = "admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scm_roles"
    )
    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.CASCADE, related_name="scm_roles"
    )
    role = models.CharField(max_length=5, choices=Role.choices, blank=True, default="")
    checked_at = models.DateTimeField()

    objects = ScmRoleQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "pipeline"], name="one_scm_role_per_user_per_pipeline"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role or 'none'} on {self.pipeline_id} (SCM)"
