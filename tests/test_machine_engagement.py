"""Machine engagement (nurture.engagement.machine, docs/ENGAGEMENT.md): privacy-proxy opens and
scanner clicks are stored, flagged with why, and wake nothing."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from nurture.engagement import machine
from nurture.engagement.handling import handle_events
from nurture.engagement.ingest import store_events
from nurture.models import EventType
from nurture.tracking.tokens import Signer
from tests.provider_signing import fixture, sign_sendgrid
from tests.test_engagement import NOW, event, make_lead, make_message
from tests.webhook_app import seed, stored_events

SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Safari/605.1.15")


@pytest.mark.parametrize(("type_", "user_agent", "ip", "reason"), [
    (EventType.OPEN, SAFARI, "203.0.113.7", None),
    (EventType.CLICK, SAFARI, "203.0.113.7", None),
    (EventType.OPEN, "Mozilla/5.0", "203.0.113.7", "privacy_proxy"),
    (EventType.OPEN, SAFARI, "17.58.101.12", "privacy_proxy"),
    (EventType.CLICK, "Mozilla/5.0", "17.58.101.12", None),  # Apple's proxy fetches images only
    (EventType.CLICK, "Mozilla/5.0 (compatible; Barracuda Sentinel)", None, "scanner_user_agent"),
    (EventType.CLICK, "Mozilla/5.0 (compatible; bingbot/2.0)", None, "scanner_user_agent"),
    (EventType.OPEN, "Mozilla/5.0 HeadlessChrome/120.0", None, "scanner_user_agent"),
    (EventType.CLICK, "python-requests/2.32", None, "scanner_user_agent"),
    (EventType.CLICK, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
     None, None),
    (EventType.DELIVERED, "Mozilla/5.0", "17.0.0.1", None),  # only opens and clicks
    (EventType.OPEN, None, "not an address", None),
])
def test_single_event_rules(type_, user_agent, ip, reason):
    assert machine.single_event_reason(type_, user_agent, ip) == reason


def test_the_providers_own_verdicts():
    assert machine.provider_bot("sendgrid", {"sg_machine_open": True}) == (
        "provider:sendgrid_machine_open")
    assert machine.provider_bot("sendgrid", {"sg_machine_open": False}) is None
    assert machine.provider_bot("mailgun", {"client-info": {"bot": "apple"}}) == (
        "provider:mailgun_bot_apple")
    assert machine.provider_bot("mailgun", {"client-info": {"bot": ""}}) is None
    assert machine.single_event_reason(EventType.OPEN, SAFARI, None, "provider:x") == "provider:x"


def clicks(*seconds_and_urls, message=1):
    return [machine.Click(i, message, url, NOW + timedelta(seconds=s))
            for i, (s, url) in enumerate(seconds_and_urls)]


def test_link_bursts():
    sent = {1: NOW}
    # two links within seconds of each other, right after sending: a scanner
    assert machine.link_bursts(clicks((3, "a"), (4, "b")), sent) == {0, 1}
    # the same link twice is a person clicking again
    assert machine.link_bursts(clicks((3, "a"), (4, "a")), sent) == set()
    # two links far apart
    assert machine.link_bursts(clicks((3, "a"), (60, "b")), sent) == set()
    # a burst a day after sending is a person going through the email
    assert machine.link_bursts(clicks((86400, "a"), (86401, "b")), sent) == set()
    # only the clicks inside the burst
    assert machine.link_bursts(clicks((3, "a"), (4, "b"), (3600, "c")), sent) == {0, 1}
    assert machine.link_bursts(clicks((3, "a"), (4, "b")), {1: None}) == set()


def test_a_burst_flags_the_batch_and_the_clicks_stored_before_it(db):
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead)
        store_events(session, [event(source_event_id="c1", type=EventType.CLICK,
                                     url="https://a.example/1", occurred_at=NOW + timedelta(seconds=2))],
                     now=NOW)
    with db.session_scope() as session:
        store_events(session, [event(source_event_id="c2", type=EventType.CLICK,
                                     url="https://a.example/2", occurred_at=NOW + timedelta(seconds=3))],
                     now=NOW)
    flagged = {r.source_event_id: (r.is_machine, r.machine_reason) for r in stored_events(db)}
    assert flagged == {"c1": (True, "link_burst"), "c2": (True, "link_burst")}


def test_machine_engagement_is_stored_but_wakes_no_branch(db):
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead)
        stored = store_events(session, [
            event(source_event_id="proxy", user_agent="Mozilla/5.0"),
            event(source_event_id="scan", type=EventType.CLICK, url="https://a.example/",
                  user_agent="Proofpoint URL Defense"),
        ], now=NOW)
        handled = handle_events(session, *stored.id_range, now=NOW)
    assert (handled.events, handled.woken) == (2, 0)
    assert {r.machine_reason for r in stored_events(db)} == {"privacy_proxy", "scanner_user_agent"}


def test_tracking_links_apply_the_rules_to_the_request(app, db, client, service_env):
    _, message = seed(db, "ada@example.com", "m-1", links={
        "0": {"url": "https://a.example/guide", "collateral_version_id": None}})
    signer = Signer(service_env["SECRET_KEY"])
    client.get(f"/t/o/{signer.open_token(message)}", headers={"User-Agent": "Mozilla/5.0"})
    client.get(f"/t/o/{signer.open_token(message)}", headers={"User-Agent": SAFARI})
    client.get(f"/t/c/{signer.click_token(message, 0)}",
               headers={"User-Agent": "Mimecast-URL-Protect"})
    rows = stored_events(db)
    assert [(r.type, r.is_machine, r.machine_reason) for r in rows] == [
        (EventType.OPEN, True, "privacy_proxy"), (EventType.OPEN, False, None),
        (EventType.CLICK, True, "scanner_user_agent")]
    assert rows[0].properties["ip"] == "127.0.0.1"


def test_a_sendgrid_machine_open_is_flagged(providers, db):
    seed(db, "example@test.com", "m-1001")
    opened = next(e for e in fixture("sendgrid_events.json") if e["event"] == "open")
    body = json.dumps([opened | {"sg_machine_open": True}]).encode()
    headers = sign_sendgrid(providers.sendgrid_key, int(time.time()), body)
    answer = providers.app.test_client().post("/webhooks/sendgrid", data=body, headers=headers,
                                              content_type="application/json")
    assert answer.status_code == 200
    (row,) = stored_events(db)
    assert (row.is_machine, row.machine_reason) == (True, "provider:sendgrid_machine_open")
