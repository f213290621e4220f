"""Composing an email for one step: render, track links, inline CSS, set the headers.

Every link in the HTML becomes a signed click-tracking URL whose destination is recorded on
the message (so a click can only go where we sent it); the open pixel, a visible unsubscribe
link, `List-Unsubscribe` with `List-Unsubscribe-Post` (RFC 8058) and the sender's postal
address are always there. The message carries its `nurture_message_id` to the provider in
the header the configured relay reads.
"""

from __future__ import annotations

import binascii
import io
import json
import re
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message as MimeMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import lru_cache
from typing import Any

import css_inline
import lxml.html

from campaigns.rendering import RenderedEmail

MAX_LINE_LENGTH = 998
"""RFC 5322's limit for a line of a message, CRLF excluded."""

TRACKED_SCHEMES = ("http://", "https://")
"""Only web links are tracked; mailto:, tel: and anchors are left as they are."""

BOUNDARY_ID_LENGTH = 24
"""Characters of the message id in the MIME boundary: `=_` and 24 keep `Content-Type:
multipart/alternative; boundary="…"` within 78 characters, one line, folded by nobody."""

PROVIDER_HEADERS = ("sendgrid", "mailgun", "postmark", "ses", "none")
"""Relays whose header for our message id is known (NURTURE_MAIL_PROVIDER)."""


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    company: str
    postal_address: str
    base_url: str
    provider: str = "none"


@dataclass(frozen=True)
class Links:
    """Where tracked links point, by number; stored on the message at send time."""

    destinations: dict[str, dict[str, Any]]


def track_links(
    html: str,
    click_url: Any,
    collateral_urls: dict[str, int],
    *,
    untracked_prefixes: tuple[str, ...] = (),
) -> tuple[str, Links]:
    """Rewrite each web link (`<a href>`) to `click_url(n)`; `collateral_urls` maps a URL to
    its collateral version. Links starting with `untracked_prefixes` (our own unsubscribe
    page) are left alone, and so are images (the open pixel)."""
    document = lxml.html.document_fromstring(html)
    destinations: dict[str, dict[str, Any]] = {}
    by_url: dict[str, int] = {}
    for element in document.iter("a"):  # the HTML parser lowercases tags
        url = element.get("href")
        if url is None:
            continue
        if not url.startswith(TRACKED_SCHEMES) or url.startswith(untracked_prefixes):
            continue
        if url not in by_url:
            number = len(by_url)
            by_url[url] = number
            destinations[str(number)] = {"url": url,
                                         "collateral_version_id": collateral_urls.get(url)}
        element.set("href", click_url(by_url[url]))
    out = lxml.html.tostring(document, encoding="unicode", doctype="<!DOCTYPE html>")
    return out, Links(destinations)


INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)
"""Styles are inlined from the email's own `<style>` blocks only: a `<link rel=stylesheet>` to
another site is never fetched (css_inline's default would fetch it, from a worker, for every
email); it stays in the email for the clients that load it."""


def inline_css(html: str) -> str:
    return INLINER.inline(html)


class OutgoingEmail(MIMEMultipart):
    """A multipart/alternative email that knows its SMTP envelope, so that sending need not
    parse its own headers back to find the addresses."""

    def __init__(self, *, envelope_from: str, envelope_to: str, boundary: str) -> None:
        super().__init__("alternative", boundary=boundary, policy=QUICK_FOLD)
        self.envelope_from = envelope_from
        self.envelope_to = envelope_to

    def smtp_bytes(self) -> bytes:
        """The email as SMTP carries it (CRLF line ends): byte for byte what
        `email.generator.BytesGenerator` writes for it under its policy (a property test
        holds them equal), several times faster: the generator writes the parts'
        quoted-printable bodies a line and a line end at a time, each encoded on its own.
        The headers are folded by the policy as the generator folds them; what is ours is
        only the framing of RFC 2046 around the parts, as the generator lays it out. An
        email of any other shape (a preamble, nested parts, a non-ASCII body) goes through
        the generator itself."""
        parts = self.get_payload()
        bodies = [part.get_payload() for part in parts]
        boundary = self.get_boundary()
        if (self.preamble is not None or self.epilogue is not None or not boundary
                or not all(isinstance(body, str) and body.isascii() for body in bodies)):
            return _generated(self)
        policy = SMTP_FOLD
        chunks = [_header_block(self, policy)]
        for number, (part, body) in enumerate(zip(parts, bodies, strict=True)):
            delimiter = f"--{boundary}\r\n" if number == 0 else f"\r\n--{boundary}\r\n"
            chunks.append(delimiter.encode("ascii"))
            chunks.append(_part_header_block(tuple(part.raw_items())))
            if policy.mangle_from_ and "From " in body:
                body = _FROM_LINE.sub(">From ", body)
            # every line end made CRLF, as the generator's `\r\n|\r|\n` would
            body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
            chunks.append(body.encode("ascii"))
        chunks.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
        return b"".join(chunks)


_FROM_LINE = re.compile(r"^From ", re.MULTILINE)
"""compat32 writes a body line starting `From ` as `>From ` (mbox), as the generator does."""

def _header_block(message: MimeMessage, policy: Compat32) -> bytes:
    """A message's or part's headers, folded for the wire, and the blank line after them."""
    return b"".join(policy.fold_binary(name, value) for name, value in message.raw_items()
                    ) + b"\r\n"


@lru_cache(maxsize=64)
def _part_header_block(items: tuple[tuple[str, str], ...]) -> bytes:
    """A part's headers, the same few for every email (its type, charset and encoding)."""
    return b"".join(SMTP_FOLD.fold_binary(name, value) for name, value in items) + b"\r\n"


def _generated(message: MimeMessage) -> bytes:
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    return buffer.getvalue()


def build_message(
    *,
    sender: Sender,
    to_address: str,
    to_name: str | None,
    rendered: RenderedEmail,
    html: str,
    message_id: str,
    unsubscribe_url: str,
) -> OutgoingEmail:
    """The MIME message: text and HTML alternatives, and every header the recipient is owed.

    Built with the `email.mime` classes (the compat32 policy): the same MIME as
    `EmailMessage`, about three times faster to build and flatten, which sending feels.
    The boundary is `=_` and the start of the message id: both parts are quoted-printable, in which `=`
    only ever starts an escape or a soft line break, so it can never occur in them (and the
    generator need not search the parts for a boundary of its own)."""
    message = OutgoingEmail(envelope_from=sender.address, envelope_to=to_address,
                            boundary=f"=_{message_id[:BOUNDARY_ID_LENGTH]}")
    message["From"] = formataddr((sender.name, sender.address))
    message["To"] = formataddr((to_name or "", to_address))
    message["Subject"] = _header(rendered.subject)
    message["Date"] = formatdate(localtime=False)
    domain = sender.address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=message_id, domain=domain)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Nurture-Message-Id"] = message_id
    for name, value in provider_headers(sender.provider, message_id).items():
        message[name] = value
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(html, "html"))
    return message


class QuickFold(Compat32):
    """compat32, with its common cases written out directly. A header whose value is
    printable ASCII on one line needs no encoding: when it fits the line length it needs no
    folding either, yet `Compat32._fold` builds a `Header` to find that out (most of the
    time it takes to flatten an email), and the same goes for a value with no space to fold
    at (a long URL), which compat32 would move to a line of its own. Anything else goes to
    compat32 itself."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and value.isprintable():
            length = len(name) + 2 + len(value)
            if (length <= (self.max_line_length or 78) and "  " not in value) or (
                    " " not in value and length <= MAX_LINE_LENGTH):
                return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)  # type: ignore[no-any-return]


QUICK_FOLD = QuickFold()
SMTP_FOLD = QUICK_FOLD.clone(linesep="\r\n")


def _header(value: str) -> str | Header:
    """ASCII as it is; anything else as RFC 2047 encoded words."""
    return value if value.isascii() else Header(value, "utf-8")


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable (readable source, short lines, safe for any relay),
    encoded by `binascii` (C) rather than `email.quoprimime` (Python, six times slower)."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def provider_headers(provider: str, message_id: str) -> dict[str, str]:
    """How each relay is told our id, so its webhooks send `nurture_message_id` back."""
    if provider == "sendgrid":
        return {"X-SMTPAPI": json.dumps({"unique_args": {"nurture_message_id": message_id}})}
    if provider == "mailgun":
        return {"X-Mailgun-Variables": json.dumps({"nurture_message_id": message_id})}
    if provider == "postmark":
        return {"X-PM-Metadata-nurture_message_id": message_id}
    if provider == "ses":
        return {"X-SES-MESSAGE-TAGS": f"nurture_message_id={message_id}"}
    return {}


def sender_from(mail_from: str, **kwargs: Any) -> Sender:
    name, address = parseaddr(mail_from)
    return Sender(name=name or address, address=address, **kwargs)
