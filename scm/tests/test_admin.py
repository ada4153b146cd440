"""The admin lists webhook deliveries, read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from scm.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def test_the_admin_lists_deliveries_and_cannot_edit_them(client: Client) -> None:
    root = get_user_model().objects.create_superuser("root", password="pw-4-root!")
    client.force_login(root)
    delivery = WebhookDelivery.objects.create(
        scm="github", delivery_id="d-1", event_name="push", repository="org/repo"
    )
    listing = client.get(reverse("admin:scm_webhookdelivery_changelist"))
    assert listing.status_code == 200 and b"org/repo" in listing.content
    assert client.get(reverse("admin:scm_webhookdelivery_add")).status_code == 403
    change = reverse("admin:scm_webhookdelivery_change", args=[delivery.pk])
    client.post(change, {"repository": "other/repo"})
    delivery.refresh_from_db()
    assert delivery.repository == "org/repo"
