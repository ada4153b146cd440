from __future__ import annotations

from django.apps import AppConfig
from django.urls import register_converter

from screwdriver_site.encoded_paths import TemplateNameConverter
from screwdriver_site.ids import IdConverter


class SiteConfig(AppConfig):
    """The project itself: what every app's routes share."""

    name = "screwdriver_site"
    verbose_name = "Screwdriver"

    def ready(self) -> None:
        # Before any URLconf is read: every app's routes spell ids as <id:...>.
        register_converter(IdConverter, "id")
        register_converter(TemplateNameConverter, "template")
        # Every app's models are loaded by now: what follows a build's status change.
        from screwdriver_site.wiring import connect_handlers

        connect_handlers()
