"""WebSocket routes of the builds app."""

from __future__ import annotations

from django.urls import path

from builds.consumers import BuildConsumer

websocket_urlpatterns = [path("ws/builds/<id:build_id>/", BuildConsumer.as_asgi())]
