from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.urls import register_converter

from screwdriver_site.encoded_paths import TemplateNameConverter
from screwdriver_site.ids import IdConverter
from screwdriver_site.sqlite_wal import turn_on_wal


class SiteConfig(AppConfig):
    """The project itself: what every app's routes share."""

    name = "screwdriver_site"
    verbose_name = "Screwdriver"

    def ready(self) -> None:
        # Before any URLconf is read: every app's routes spell ids as <id:...>.
        register_converter(IdConverter, "id")
        register_converter(TemplateNameConverter, "template")
        # SQLite's write-ahead log, once a process: it is kept in the file.
        connection_created.connect(turn_on_wal, dispatch_uid="sd-sqlite-wal")
        # Every app's models are loaded by now: what follows a build's status change.
        from screwdriver_site.wiring import connect_handlers

        connect_handlers()
