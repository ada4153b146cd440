"""`sd_token create --username NAME [--admin]`: print a new API token, nothing else."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.services import create_user_token


class Command(BaseCommand):
    help = "Create a user if missing and print a new API token for it on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token")
        create.add_argument("--username", required=True)
        create.add_argument("--admin", action="store_true", help="make the user a server admin")
        create.add_argument("--name", default="cli", help="a label for the token")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"].strip()
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError as exc:
            raise CommandError(
                f"--username {username!r} is not a valid username: use letters, digits and @.+-_."
            ) from exc
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if options["admin"]:
            user.is_staff = user.is_superuser = True
        user.save()
        new = create_user_token(user=user, name=options["name"])
        self.stdout.write(new.value)
