"""Messengers: how a composed email leaves Nurture. SMTP (SMTP_URL) or a local outbox.

A messenger tells apart what it knows from what it cannot know: `SendRefused` means the
email certainly did not go (safe to try again later); `SendUnknown` means it may have gone
(the connection broke after the data was handed over), so it must never be sent again.
"""

from __future__ import annotations

import io
import os
import smtplib
import ssl
from email.generator import BytesGenerator
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

SMTP_TIMEOUT_S = 30.0
"""Longest wait for the SMTP server at any single step."""


class SendRefused(Exception):
    """The email was not sent. `permanent` when retrying cannot help (e.g. 5xx for the recipient)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SendUnknown(Exception):
    """The email may or may not have been sent."""


class Messenger(Protocol):
    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


class OutboxMessenger:
    """Writes each email as an .eml file to a folder (no SMTP_URL): nothing leaves the machine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def send(self, message: Message) -> None:
        name = message["X-Nurture-Message-Id"] or "message"
        target = self.folder / f"{name}.eml"
        temporary = self.folder / f".{name}.{os.getpid()}.tmp"
        temporary.write_bytes(bytes(message))
        os.replace(temporary, target)  # atomic: a reader never sees half a message

    def close(self) -> None:
        return None


class SmtpMessenger:
    """Sends through an SMTP server, keeping one connection open for a batch."""

    def __init__(self, url: str, *, timeout: float = SMTP_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        try:
            if self.scheme == "smtps":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.scheme == "smtp+starttls":
                    connection.starttls(context=ssl.create_default_context())
            if self.username:
                connection.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            # nothing was handed over: certainly not sent
            raise SendRefused(f"cannot reach {self.host}:{self.port}: {exc}") from None
        self._connection = connection
        return connection

    def send(self, message: Message) -> None:
        connection = self._connect()
        try:
            envelope_to = getattr(message, "envelope_to", None)
            if envelope_to is None:
                refused = connection.send_message(message)
            else:  # an OutgoingEmail: its envelope is known, its headers need no parsing
                refused = connection.sendmail(message.envelope_from,  # type: ignore[attr-defined]
                                              [envelope_to], _smtp_bytes(message))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise SendRefused(f"recipient refused: {exc.recipients}",
                              permanent=all(c >= 500 for c in codes)) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            # the server answered with an error: it did not take the message
            raise SendRefused(f"{exc.smtp_code} {exc.smtp_error!r}",
                              permanent=exc.smtp_code >= 500) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            # the data may have been handed over before the line went quiet
            raise SendUnknown(f"connection lost while sending: {exc}") from None
        if refused:
            raise SendRefused(f"recipient refused: {refused}", permanent=True)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


def _smtp_bytes(message: Message) -> bytes:
    """The message as SMTP carries it: CRLF line ends (smtplib adds the dot-stuffing)."""
    quick = getattr(message, "smtp_bytes", None)  # an OutgoingEmail writes itself
    if quick is not None:
        return quick()  # type: ignore[no-any-return]
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    return buffer.getvalue()


def messenger_for(smtp_url: str | None, outbox: Path) -> Messenger:
    return SmtpMessenger(smtp_url) if smtp_url else OutboxMessenger(outbox)
