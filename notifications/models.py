"""Notices sent about a build's statuses, and the pull request comments that carry summaries."""

from __future__ import annotations

from django.db import models

from builds.models import Build, BuildStatus
from pipelines.models import Pipeline


class NoticeChannel(models.TextChoices):
    EMAIL = "email"
    SLACK = "slack"


class NoticeState(models.TextChoices):
    PENDING = "PENDING"  # not sent yet: waiting for its first try or a retry
    SENT = "SENT"
    FAILED = "FAILED"  # refused for good, not configured, or given up after its last try


class Notice(models.Model):
    """One message about one status of a build, to one email address or Slack channel.

    Planned once per (build, status, channel, recipient) whatever reruns its handler, and
    claimed before each try, so a recipient gets it once. Its content is rendered when it is
    planned: a retry sends what the first try would have sent.
    """

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="+")
    # The status the build entered, and what the message says: that status, or FIXED.
    build_status = models.CharField(max_length=10, choices=BuildStatus.choices)
    status = models.CharField(max_length=10)
    channel = models.CharField(max_length=8, choices=NoticeChannel.choices)
    recipient = models.CharField(max_length=254)
    # Email: {"subject", "text", "html"}; Slack: chat.postMessage's fields but the channel.
    content = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=NoticeState.choices, default=NoticeState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Held while one worker sends it, so two never send it at once.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["build_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["build", "build_status", "channel", "recipient"],
                name="one_notice_per_build_status_and_recipient",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} of build {self.build_id} to {self.recipient}"


class PullRequestComment(models.Model):
    """The comment that shows a pull request job's `meta.summary`, edited by each new build."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    pr_num = models.PositiveIntegerField()
    job_name = models.CharField(max_length=128)
    # The summary key a split comment (meta.splitComments) shows; "" for the whole summary.
    keyword = models.CharField(max_length=200, blank=True, default="")
    comment_id = models.CharField(max_length=64, blank=True, default="")
    # The build whose summary it shows: an older build's late run never overwrites it.
    build = models.ForeignKey(
        Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pipeline_id", "pr_num", "job_name", "keyword"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "pr_num", "job_name", "keyword"],
                name="one_comment_per_pr_job_and_key",
            )
        ]

    def __str__(self) -> str:
        return f"comment {self.comment_id or '(none yet)'} on PR {self.pr_num} ({self.job_name})"
