"""Machine engagement: opens and clicks that no person made, recorded but flagged.

Privacy proxies fetch every image of a delivered email (Apple Mail Privacy Protection), and
link scanners follow every link (mail security gateways), often within seconds of delivery.
Those events are stored with `is_machine` and a `machine_reason`, so scoring and branches can
ignore them. The rules, in the order they are tried (docs/ENGAGEMENT.md says why each):

1. `provider:<name>`: the provider itself says a bot made it (SendGrid `sg_machine_open`,
   Mailgun `client-info.bot`).
2. `scanner_user_agent`: the user agent names a security scanner, crawler or headless browser.
3. `privacy_proxy`: an open from Apple's proxy: the bare user agent `Mozilla/5.0`, or an
   address in Apple's 17.0.0.0/8.
4. `link_burst`: at least `BURST_LINKS` different links of one message clicked within
   `BURST_WINDOW` of each other, within `BURST_AFTER_SEND` of sending (every click of the
   burst is flagged, also those stored before the burst showed).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from nurture.models import EventType

SCANNER_USER_AGENT = re.compile(
    r"bot\b|bot/|crawler|spider|headlesschrome|phantomjs|slurp|bingpreview|"
    r"barracuda|proofpoint|mimecast|messagelabs|symantec|trendmicro|trend micro|fireeye|"
    r"forcepoint|zscaler|sophos|cisco|ironport|safelinks|appriver|avanan|checkpoint|"
    r"libwww-perl|python-requests|go-http-client|curl/|wget/|scrapy|okhttp",
    re.IGNORECASE,
)
"""User agents of link scanners, crawlers and scripted clients (a browser's never match)."""

APPLE_PROXY_USER_AGENT = "Mozilla/5.0"
"""Apple's proxy fetches images with this user agent and nothing else after it."""

APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
"""Apple's own address block, from which its image proxy fetches."""

BURST_LINKS = 2
"""Different links of one message that, clicked together, make a burst."""

BURST_WINDOW = timedelta(seconds=10)
"""A person does not click two different links of one email within this of each other."""

BURST_AFTER_SEND = timedelta(minutes=5)
"""A burst counts as a scanner's when it starts within this of sending (delivery time)."""

ENGAGEMENT_TYPES = frozenset({EventType.OPEN, EventType.CLICK})
"""The only types a machine can fake; the others are never flagged."""


def provider_bot(provider: str, raw: dict[str, Any]) -> str | None:
    """The provider's own bot verdict on one of its events, as a machine reason."""
    if provider == "sendgrid" and raw.get("sg_machine_open") is True:
        return "provider:sendgrid_machine_open"
    if provider == "mailgun":
        info = raw.get("client-info")
        bot = info.get("bot") if isinstance(info, dict) else None
        if isinstance(bot, str) and bot:
            return f"provider:mailgun_bot_{bot[:32]}"
    return None


def single_event_reason(
    type_: EventType, user_agent: str | None, ip: str | None, hint: str | None = None
) -> str | None:
    """Rules 1–3, which need only the event itself."""
    if type_ not in ENGAGEMENT_TYPES:
        return None
    if hint:
        return hint
    if user_agent and is_scanner(user_agent):
        return "scanner_user_agent"
    if type_ is EventType.OPEN and (
        (user_agent or "").strip() == APPLE_PROXY_USER_AGENT or _in_apple_network(ip)
    ):
        return "privacy_proxy"
    return None


@lru_cache(maxsize=4096)  # a batch holds few distinct user agents; the pattern is long
def is_scanner(user_agent: str) -> bool:
    return SCANNER_USER_AGENT.search(user_agent) is not None


@dataclass(frozen=True)
class Click:
    """A click of a message, for the burst rule: `key` names it to the caller."""

    key: Any
    message_id: int
    url: str | None
    at: datetime


def link_bursts(
    clicks: Iterable[Click], sent_at: dict[int, datetime | None]
) -> set[Any]:
    """Rule 4: the keys of the clicks that are part of a burst (stored and new clicks alike)."""
    by_message: dict[int, list[Click]] = {}
    for click in clicks:
        by_message.setdefault(click.message_id, []).append(click)
    flagged: set[Any] = set()
    for message_id, group in by_message.items():
        sent = sent_at.get(message_id)
        if sent is None or len(group) < BURST_LINKS:
            continue
        group.sort(key=lambda c: c.at)
        start = 0
        for end, click in enumerate(group):
            while click.at - group[start].at > BURST_WINDOW:
                start += 1
            window = group[start : end + 1]
            if (len({c.url for c in window}) >= BURST_LINKS
                    and window[0].at - sent <= BURST_AFTER_SEND):
                flagged.update(c.key for c in window)
    return flagged


def _in_apple_network(ip: str | None) -> bool:
    return _apple_address(ip) if ip else False


@lru_cache(maxsize=4096)
def _apple_address(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.strip()) in APPLE_NETWORK
    except ValueError:
        return False
