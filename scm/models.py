"""Webhook deliveries received from SCMs, kept so that a delivery is acted on only once."""

from __future__ import annotations

from django.db import models


class WebhookDelivery(models.Model):
    """One verified webhook delivery; its unique (scm, delivery id) refuses replays."""

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
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.QUEUED)
    message = models.CharField(max_length=512, blank=True, default="")
    events = models.JSONField(default=list)  # ids of the events this delivery started

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scm", "delivery_id"], name="one_delivery_per_scm_delivery_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scm} {self.event_name} {self.delivery_id}"
