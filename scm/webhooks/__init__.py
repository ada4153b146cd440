"""GitHub and GitLab webhooks: receive (verify, record once) and, in the worker, act once.

`receive_github` and `receive_gitlab` verify a delivery and record it; `process_delivery`
acts on a recorded one. Each SCM's module only verifies and translates its payloads into the
SCM-neutral actions of `scm.webhooks.actions`, which start and stop what they ask for.
"""

from __future__ import annotations

from scm.deliveries import Received, WebhookRejected
from scm.webhooks.dispatch import process_delivery
from scm.webhooks.github import receive_github
from scm.webhooks.gitlab import receive_gitlab

__all__ = ["Received", "WebhookRejected", "process_delivery", "receive_github", "receive_gitlab"]
