"""Reading the local outbox (no SMTP_URL): the emails `OutboxMessenger` wrote as .eml files,
newest first, for the operators' page. Nothing here sends or deletes."""

from __future__ import annotations

import heapq
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from nurture.errors import NotFound

PAGE_SIZE = 50
"""Emails listed on the operators' page (the newest)."""

MAX_READ = 2 * 1024 * 1024
"""Largest .eml file read (the outbox holds Nurture's own emails; this is a safety bound)."""

_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,200}\.eml$")
"""A file name the page may ask for: no path separators, no hidden files."""


@dataclass(frozen=True)
class OutboxEmail:
    name: str
    written_at: datetime
    size: int
    sender: str
    to: str
    subject: str


@dataclass(frozen=True)
class OutboxMessage:
    summary: OutboxEmail
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None


def list_outbox(folder: Path, *, limit: int = PAGE_SIZE) -> tuple[list[OutboxEmail], int]:
    """The newest `limit` emails of the folder, and how many it holds."""
    if not folder.is_dir():
        return [], 0
    entries = [e for e in os.scandir(folder) if e.is_file() and _NAME.match(e.name)]
    newest = heapq.nlargest(limit, entries, key=lambda e: e.stat().st_mtime)
    return [_summary(Path(e.path), e.stat()) for e in newest], len(entries)


def read_outbox_email(folder: Path, name: str) -> OutboxMessage:
    """One email of the outbox by file name; NotFound for any other name."""
    if not _NAME.match(name):
        raise NotFound("no such email in the outbox")
    path = folder / name
    if not path.is_file():
        raise NotFound("no such email in the outbox")
    message = _parse(path)
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    return OutboxMessage(
        summary=_summary(path, path.stat(), message),
        headers=[(k, str(v)) for k, v in message.items()],
        text=text_part.get_content() if text_part is not None else None,
        html=html_part.get_content() if html_part is not None else None,
    )


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        raw = handle.read(MAX_READ)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _summary(path: Path, stat: os.stat_result,
             message: EmailMessage | None = None) -> OutboxEmail:
    if message is None:
        with path.open("rb") as handle:  # the headers are enough for the list
            head = handle.read(16384).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        message = message_from_bytes(head + b"\n\n", policy=policy.default)  # type: ignore[assignment]
    assert message is not None
    return OutboxEmail(
        name=path.name, written_at=datetime.fromtimestamp(stat.st_mtime, UTC), size=stat.st_size,
        sender=str(message.get("From", "")), to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")))
