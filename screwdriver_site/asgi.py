"""The ASGI application: Django over HTTP, the build page's and the launcher's WebSockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screwdriver_site.settings")

django_asgi = get_asgi_application()

# These import models, so they come after Django is set up.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from builds.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        # Each route guards itself (builds/routing.py): a session and an origin for the page,
        # the build token for the launcher.
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
