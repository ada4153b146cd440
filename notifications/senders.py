"""The two ways a notice leaves the server: SMTP (Django's backend) and Slack's chat.postMessage.

Each failure says whether trying again can help (`permanent`) and whether the whole channel
is out (`channel_down`: the server did not answer), so one run stops trying it.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend

SLACK_TIMEOUT_SECONDS = 10.0
# Slack's answers that a later try may not get.
_SLACK_TRANSIENT = {"ratelimited", "service_unavailable", "fatal_error", "internal_error"}


class DeliveryError(Exception):
    """A notice that was not delivered; the message is shown on the build page."""

    def __init__(self, message: str, *, permanent: bool = False, channel_down: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.channel_down = channel_down


def email_configured() -> bool:
    return bool(settings.SD_SMTP_HOST)


@dataclass(frozen=True)
class SlackRoute:
    """Where a channel as a job's settings name it goes: its workspace, its name there and
    the workspace's token ("" when this server has none)."""

    workspace: str
    channel: str
    token: str
    named_workspace: bool  # written `workspace:channel`


def slack_route(recipient: str) -> SlackRoute:
    """Screwdriver's `workspace:channel`, or a bare channel of the default workspace."""
    workspace, sep, channel = recipient.partition(":")
    if not sep:
        workspace, channel = settings.SD_SLACK_DEFAULT_WORKSPACE, recipient
    tokens = {settings.SD_SLACK_DEFAULT_WORKSPACE: settings.SD_SLACK_TOKEN}
    tokens.update(settings.SD_SLACK_WORKSPACES)
    return SlackRoute(
        workspace=workspace.strip(),
        channel=channel.strip(),
        token=tokens.get(workspace.strip(), ""),
        named_workspace=bool(sep),
    )


class EmailSender:
    """One SMTP connection for the emails of one run, opened when the first one goes."""

    def __init__(self) -> None:
        self._backend: EmailBackend | None = None

    def __enter__(self) -> EmailSender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            # A connection that broke is closed all the same.
            with contextlib.suppress(Exception):
                self._backend.close()
            self._backend = None

    def _open(self) -> EmailBackend:
        if self._backend is None:
            backend = EmailBackend(
                host=settings.SD_SMTP_HOST,
                port=settings.SD_SMTP_PORT,
                username=settings.SD_SMTP_USER,
                password=settings.SD_SMTP_PASSWORD,
                use_tls=settings.SD_SMTP_STARTTLS,
                timeout=settings.SD_SMTP_TIMEOUT_SECONDS,
                fail_silently=False,
            )
            try:
                backend.open()
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryError(
                    f"The SMTP server {settings.SD_SMTP_HOST}:{settings.SD_SMTP_PORT} did not "
                    f"take the connection ({_reason(exc)}).",
                    channel_down=True,
                ) from exc
            self._backend = backend
        return self._backend

    def send(self, *, to: str, content: dict[str, Any]) -> None:
        """Send one email of a notice's content to one address."""
        message = EmailMultiAlternatives(
            subject=str(content.get("subject", "")),
            body=str(content.get("text", "")),
            from_email=settings.SD_EMAIL_FROM,
            to=[to],
            connection=self._open(),
        )
        if content.get("html"):
            message.attach_alternative(str(content["html"]), "text/html")
        try:
            message.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"The SMTP server refused {to} ({_reason(exc)}).",
                permanent=all(500 <= code < 600 for code in codes),
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"The SMTP server refused SD_SMTP_USER's login ({_reason(exc)}).",
                channel_down=True,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"The SMTP server refused the email ({_reason(exc)}).",
                permanent=500 <= exc.smtp_code < 600,
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryError(
                f"The SMTP server dropped the connection ({_reason(exc)}).", channel_down=True
            ) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return f"{exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{code} {message.decode(errors='replace') if isinstance(message, bytes) else message}"
            for code, message in exc.recipients.values()
        )
    return str(exc) or type(exc).__name__


@cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds: once per process, not per message.
    return httpx.create_ssl_context()


def post_slack(*, channel: str, content: dict[str, Any]) -> None:
    """Post one Slack message of a notice's content to one channel (chat.postMessage), with
    the token of the channel's workspace."""
    route = slack_route(channel)
    if not route.token:
        raise DeliveryError(
            f"This server has no Slack token for the workspace {route.workspace}.", permanent=True
        )
    try:
        response = httpx.post(
            f"{settings.SD_SLACK_API_URL}/chat.postMessage",
            json={**content, "channel": route.channel},
            headers={"Authorization": f"Bearer {route.token}"},
            timeout=SLACK_TIMEOUT_SECONDS,
            verify=_tls(),
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"Slack did not answer ({exc or type(exc).__name__}).", channel_down=True
        ) from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise DeliveryError(f"Slack answered {response.status_code}.", channel_down=True)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DeliveryError(f"Slack answered {response.status_code} without a JSON object.")
    if answer.get("ok") is True:
        return
    error = str(answer.get("error") or f"HTTP {response.status_code}")
    if error in _SLACK_TRANSIENT:
        # Slack's limits and outages hold for the whole workspace, not one channel.
        raise DeliveryError(
            f"Slack answered {error}; the message is tried again later.", channel_down=True
        )
    raise DeliveryError(f"Slack refused the message to {channel}: {error}.", permanent=True)
