"""The drip engine against a real SMTP server, on a controlled clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns import collateral as collateral_service
from campaigns.dispatch import claim_due
from campaigns.intake import reject_lead
from campaigns.messengers import SmtpMessenger
from campaigns.sending import Sending, run_due
from campaigns.sequences import activate_sequence, import_sequence
from nurture.accounts.services import Actor
from nurture.config import load_settings, with_secret_key
from nurture.models import (
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Message,
    MessageStatus,
    RejectionReason,
    Role,
    Suppression,
    SuppressionReason,
)
from tests.test_api_sequences import make_collateral

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday

ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00",
          "end": "23:59", "timezone": "UTC"}

DOCUMENT = {
    "key": "fast",
    "name": "Fast",
    "entry": {"reasons": ["bad_timing"]},
    "send_window": ALWAYS,
    "stages": [
        {"key": "one", "name": "One", "steps": [
            {"type": "email", "id": "hello", "template": "check-in",
             "collateral": ["planning-guide"]},
            {"type": "wait", "id": "pause", "duration": "PT10S"},
            {"type": "branch", "id": "clicked", "then": "proof",
             "condition": {"engaged": "click", "step": "hello", "within": "PT30S"}},
            {"type": "email", "id": "nudge", "template": "champion-kit"},
        ]},
        {"key": "two", "name": "Two", "steps": [
            {"type": "email", "id": "proof", "template": "case-study"},
            {"type": "exit", "id": "done"},
        ]},
    ],
}


class Crash(Exception):
    """What a worker dying mid-handover looks like to the code after it: nothing more runs."""


class CrashingMessenger:
    def send(self, message):
        raise Crash()

    def close(self):
        pass


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture()
def clock():
    return Clock(T0)


@pytest.fixture()
def sending(smtp_server, service_env):
    sink, url = smtp_server
    settings = with_secret_key(load_settings({**service_env, "SMTP_URL": url,
                                              "NURTURE_FREQUENCY_CAP": "10/P1D"}))

    def make() -> Sending:
        return Sending.from_settings(settings, messenger=SmtpMessenger(url, timeout=5))

    return sink, make


def setup_sequence(db, clock, document=DOCUMENT):
    make_collateral(db)
    with db.session_scope() as session:
        imported = import_sequence(session, copy.deepcopy(document), now=clock())
        activate_sequence(session, imported.sequence.id, now=clock(), today=clock().date())


def reject(db, clock, email="lead@example.com", lead=None, **kw):
    with db.session_scope() as session:
        intake = reject_lead(session, email, lead or {"first_name": "Lee", "timezone": "UTC"},
                             rep_email="rep@example.com", reason=RejectionReason.BAD_TIMING,
                             now=clock(), **kw)
        assert intake.enrollment is not None, intake.routing_reason
        return intake.enrollment["id"]


def crash_while_sending(db, clock, make_sending):
    """A tick whose worker dies at its first handover."""
    with db.session_scope() as session:
        ids = claim_due(session, now=clock())
    crashing = make_sending()
    crashing.messenger = CrashingMessenger()
    with pytest.raises(Crash):
        run_due(db, ids, crashing, clock=clock)


def tick(db, clock, make_sending):
    with db.session_scope() as session:
        ids = claim_due(session, now=clock())
    return run_due(db, ids, make_sending(), clock=clock)


def enrollment(db, enrollment_id):
    with db.session_scope() as session:
        return session.get(Enrollment, enrollment_id)


def test_steps_are_sent_in_order_with_waits_and_branch(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    assert [m["Subject"] for m in sink.messages] == ["Still on your radar, Lee?"]
    clock.advance(seconds=5)
    tick(db, clock, make)
    assert len(sink.messages) == 1  # still waiting
    clock.advance(seconds=6)
    tick(db, clock, make)  # wait over; branch waits for a click until 30 s after the send
    assert len(sink.messages) == 1
    assert enrollment(db, enrollment_id).step_id == "clicked"
    clock.advance(seconds=25)
    tick(db, clock, make)  # no click within the window: the else path (the next step)
    assert [m["Subject"] for m in sink.messages][1] == "Making the case inside your company"
    tick(db, clock, make)
    final = enrollment(db, enrollment_id)
    assert [m["Subject"] for m in sink.messages][2].startswith("How a team like")
    assert (final.status, final.exit_reason) == (EnrollmentStatus.COMPLETED, "completed")


def test_every_email_carries_unsubscribe_headers_address_and_our_id(db, clock, sending, app):
    sink, make = sending
    setup_sequence(db, clock)
    reject(db, clock)
    tick(db, clock, make)
    email = sink.messages[0]
    assert email["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with db.session_scope() as session:
        message = session.execute(select(Message)).scalar_one()
        assert email["X-Nurture-Message-Id"] == message.message_id
        assert message.status == MessageStatus.SENT
        links = message.links
    html = email.get_body(("html",)).get_content()
    text = email.get_body(("plain",)).get_content()
    assert "/t/o/" in html and "Unsubscribe" in html and "/u/" in text
    assert "Postal address not set" in html  # the configured (here: default) postal address
    assert "/t/c/" in html and "https://cdn.example.com/planning-guide" not in html
    from nurture.leads.services import find_lead_by_email, lead_document

    with db.session_scope() as session:
        received = lead_document(session, find_lead_by_email(session, "lead@example.com"))["messages"]
    assert [(m["step_id"], m["status"], m["collateral"]) for m in received] == [
        ("hello", "sent", [{"key": "planning-guide", "version": 1, "title": "Planning-Guide"}])
    ]
    assert [link["url"] for link in links.values()] == ["https://cdn.example.com/planning-guide"]
    assert 'style="' in html  # CSS inlined


def test_a_click_takes_the_then_path_at_once(db, clock, sending, client):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    html = sink.messages[0].get_body(("html",)).get_content()
    click_path = html.split('href="http://127.0.0.1:8000')[1].split('"')[0]
    response = client.get(click_path)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://cdn.example.com/planning-guide"
    clock.advance(seconds=11)
    tick(db, clock, make)
    assert [m["Subject"] for m in sink.messages][-1].startswith("How a team like")
    assert enrollment(db, enrollment_id).status == EnrollmentStatus.COMPLETED


def test_unsubscribe_one_click_stops_the_sequence(db, clock, sending, client):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    unsubscribe = sink.messages[0]["List-Unsubscribe"].strip("<>").removeprefix("http://127.0.0.1:8000")
    assert client.get(unsubscribe).status_code == 200  # asks, does nothing
    response = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert client.post(unsubscribe).status_code == 200  # twice is fine
    clock.advance(seconds=60)
    tick(db, clock, make)
    assert len(sink.messages) == 1
    final = enrollment(db, enrollment_id)
    assert (final.status, final.exit_reason) == (EnrollmentStatus.EXITED, "unsubscribed")
    with db.session_scope() as session:
        assert session.execute(select(Suppression.email)).scalars().all() == ["lead@example.com"]


def test_a_crash_while_sending_is_never_sent_twice(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)

    crash_while_sending(db, clock, make)
    with db.session_scope() as session:
        assert session.execute(select(Message.status)).scalar_one() == MessageStatus.SENDING
    clock.advance(minutes=11)  # the claim's lease has passed
    tick(db, clock, make)
    with db.session_scope() as session:
        first = session.execute(select(Message).where(Message.step_id == "hello")).scalar_one()
        assert first.status == MessageStatus.UNKNOWN
        kinds = session.execute(select(EnrollmentEvent.kind)).scalars().all()
    assert any(kind.startswith("delivery unknown") for kind in kinds)
    assert len(sink.messages) == 0  # not re-sent
    assert enrollment(db, enrollment_id).step_id == "pause"  # moved on past the email


def test_a_crash_mid_batch_sends_the_rest_later_once_each(db, clock, sending):
    """The batch is planned and queued first; a crash at the first handover leaves that one
    `sending` (then unknown, never re-sent) and the rest `queued`, sent once each later."""
    sink, make = sending
    setup_sequence(db, clock)
    for n in range(4):
        reject(db, clock, email=f"lead{n}@example.com")

    crash_while_sending(db, clock, make)
    with db.session_scope() as session:
        statuses = sorted(session.execute(select(Message.status)).scalars())
    assert statuses == sorted([MessageStatus.SENDING] + [MessageStatus.QUEUED] * 3)
    clock.advance(minutes=11)  # the claims' lease has passed
    tick(db, clock, make)
    tick(db, clock, make)
    with db.session_scope() as session:
        statuses = sorted(session.execute(select(Message.status)).scalars())
    assert statuses == sorted([MessageStatus.UNKNOWN] + [MessageStatus.SENT] * 3)
    received = sorted(m["To"].addresses[0].addr_spec for m in sink.messages)
    assert len(received) == len(set(received)) == 3


def test_an_unsubscribe_during_the_batch_stops_an_email_already_queued(db, clock, sending, client):
    """Between planning and handover, the lead of a queued email unsubscribes (with the link
    of an earlier email): that email is not sent, and the enrollment exits."""
    sink, make = sending
    setup_sequence(db, clock)
    first, second = (reject(db, clock, email=f"lead{n}@example.com") for n in range(2))
    with db.session_scope() as session:
        ids = claim_due(session, now=clock())
    inner = make()

    class UnsubscribingMessenger:
        """Hands the first email over, then the second lead unsubscribes."""

        def send(self, message):
            inner.messenger.send(message)
            with db.session_scope() as session:
                session.add(Suppression(email="lead1@example.com",
                                        reason=SuppressionReason.UNSUBSCRIBED,
                                        created_at=clock()))

        def close(self):
            inner.messenger.close()

    patched = make()
    patched.messenger = UnsubscribingMessenger()
    counts = run_due(db, ids, patched, clock=clock)
    assert counts.sent == 1
    assert [m["To"].addresses[0].addr_spec for m in sink.messages] == ["lead0@example.com"]
    stopped = enrollment(db, second)
    assert (stopped.status, stopped.exit_reason) == (EnrollmentStatus.EXITED, "unsubscribed")
    assert stopped.claimed_until is None
    with db.session_scope() as session:
        message = session.execute(
            select(Message).where(Message.enrollment_id == second)).scalar_one()
        assert message.status == MessageStatus.SKIPPED
    assert enrollment(db, first).step_id == "pause"


def test_an_enrollment_stopped_right_after_its_email_left_is_not_moved_on(db, clock, sending):
    """Moving the batch's enrollments on after their emails (settle_sent) leaves alone one
    that was stopped meanwhile (here: its lead unsubscribed in the second after the email)."""
    sink, make = sending
    setup_sequence(db, clock)
    stopped, going = (reject(db, clock, email=f"lead{n}@example.com") for n in range(2))
    inner = make()

    class StoppingMessenger:
        def send(self, message):
            inner.messenger.send(message)
            if message["To"].endswith("<lead0@example.com>"):
                with db.session_scope() as session:
                    row = session.get(Enrollment, stopped)
                    row.status, row.exit_reason = EnrollmentStatus.EXITED, "unsubscribed"

        def close(self):
            inner.messenger.close()

    patched = make()
    patched.messenger = StoppingMessenger()
    with db.session_scope() as session:
        ids = claim_due(session, now=clock())
    assert run_due(db, ids, patched, clock=clock).sent == 2
    assert len(sink.messages) == 2
    left = enrollment(db, stopped)
    assert (left.status, left.step_id, left.claimed_until) == (
        EnrollmentStatus.EXITED, "hello", None)
    moved = enrollment(db, going)
    assert (moved.status, moved.step_id, moved.claimed_until) == (
        EnrollmentStatus.ACTIVE, "pause", None)
    assert moved.next_due_at == clock() + timedelta(seconds=10)


def test_an_expression_failing_for_one_lead_holds_that_email_only(db, clock, sending):
    """A subject valid for the sample lead fails for a lead without a company size: that
    enrollment is held with the reason; the batch's other emails go out."""
    sink, make = sending
    document = copy.deepcopy(DOCUMENT)
    document["stages"][0]["steps"][0]["subject"] = "{{ lead.company_size + 1 }} seats"
    setup_sequence(db, clock, document)
    held = reject(db, clock, email="nosize@example.com")
    sized = reject(db, clock, email="sized@example.com",
                   lead={"first_name": "Lee", "timezone": "UTC", "company_size": 40})
    counts = tick(db, clock, make)
    assert (counts.sent, counts.held) == (1, 1)
    assert [m["Subject"] for m in sink.messages] == ["41 seats"]
    stuck = enrollment(db, held)
    assert stuck.status == EnrollmentStatus.HELD
    assert "TypeError" in stuck.hold_reason
    assert stuck.claimed_until is None
    assert enrollment(db, sized).step_id == "pause"


def test_lanes_hand_a_batch_over_side_by_side_each_email_once(
        db, clock, smtp_server, service_env):
    """Without a messenger handed in, sending opens NURTURE_SMTP_CONNECTIONS connections and
    deals the batch out to them: every email once, on its envelope, from several clients."""
    sink, url = smtp_server
    settings = with_secret_key(load_settings({**service_env, "SMTP_URL": url,
                                              "NURTURE_SMTP_CONNECTIONS": "3"}))
    sending = Sending.from_settings(settings)
    assert sending.lanes == 3
    setup_sequence(db, clock)
    emails = [f"lead{n}@example.com" for n in range(10)]
    enrollment_ids = [reject(db, clock, email=email) for email in emails]
    counts = tick(db, clock, lambda: sending)
    assert counts.sent == 10
    assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages) == emails
    assert sorted(rcpt for _, _, rcpts in sink.envelopes for rcpt in rcpts) == emails
    assert {mail_from for _, mail_from, _ in sink.envelopes} == {settings.mail_from.rpartition(
        "<")[2].rstrip(">")}
    assert len({peer for peer, _, _ in sink.envelopes}) == 3
    with db.session_scope() as session:
        assert set(session.execute(select(Message.status)).scalars()) == {MessageStatus.SENT}
    assert {enrollment(db, e).step_id for e in enrollment_ids} == {"pause"}


def test_an_error_in_one_lane_lets_the_others_finish_then_is_raised(db, clock, sending):
    """A crash in one lane: that lane's email stays `sending` (then unknown); the other
    lanes hand theirs over; the error reaches the job."""
    sink, make = sending
    setup_sequence(db, clock)
    for n in range(6):
        reject(db, clock, email=f"lead{n}@example.com")

    lanes = make()
    lanes.lanes = 3
    extra = iter([CrashingMessenger(), make().messenger])
    lanes.another_messenger = lambda: next(extra)
    with db.session_scope() as session:
        ids = claim_due(session, now=clock())
    with pytest.raises(Crash):
        run_due(db, ids, lanes, clock=clock)
    with db.session_scope() as session:
        statuses = sorted(session.execute(select(Message.status)).scalars())
    # lane 2 crashed on its first email: that one `sending`, its other one still queued
    assert statuses == sorted([MessageStatus.SENDING, MessageStatus.QUEUED]
                              + [MessageStatus.SENT] * 4)
    assert len(sink.messages) == 4


def test_a_refusing_server_is_retried_with_backoff_and_sends_once(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)
    sink.refuse = "451 Try again later"
    tick(db, clock, make)
    tick(db, clock, make)  # not due again yet: backoff
    with db.session_scope() as session:
        message = session.execute(select(Message)).scalar_one()
        assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert enrollment(db, enrollment_id).next_due_at == clock() + timedelta(minutes=1)
    sink.refuse = None
    clock.advance(minutes=1)
    tick(db, clock, make)
    assert len(sink.messages) == 1
    with db.session_scope() as session:
        message = session.execute(select(Message)).scalar_one()
        assert (message.status, message.attempts) == (MessageStatus.SENT, 2)


def test_a_permanent_refusal_holds_the_enrollment_and_says_why(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    enrollment_id = reject(db, clock)
    sink.refuse = "554 No such user"
    tick(db, clock, make)
    held = enrollment(db, enrollment_id)
    assert held.status == EnrollmentStatus.HELD
    assert "554" in held.hold_reason


def test_emails_wait_for_the_send_window(db, clock, sending):
    sink, make = sending
    document = copy.deepcopy(DOCUMENT)
    document["send_window"] = {"days": ["wed"], "start": "09:00", "end": "10:00",
                               "timezone": "Europe/Berlin"}
    setup_sequence(db, clock, document)
    enrollment_id = reject(db, clock, lead={"first_name": "Lee"})  # no zone: the window's
    tick(db, clock, make)  # Tuesday 11:00 in Berlin: outside
    assert sink.messages == []
    opens = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wednesday 09:00 in Berlin
    assert enrollment(db, enrollment_id).next_due_at == opens
    clock.now = opens
    tick(db, clock, make)
    assert len(sink.messages) == 1


def test_the_frequency_cap_holds_a_step_without_dropping_it(db, clock, smtp_server, service_env):
    sink, url = smtp_server
    settings = with_secret_key(load_settings({**service_env, "SMTP_URL": url,
                                              "NURTURE_FREQUENCY_CAP": "1/P1D"}))
    make = lambda: Sending.from_settings(settings, messenger=SmtpMessenger(url))  # noqa: E731
    document = copy.deepcopy(DOCUMENT)
    document["stages"][0]["steps"][1]["duration"] = "PT1S"
    document["stages"][0]["steps"][2]["condition"]["within"] = "PT2S"
    setup_sequence(db, clock, document)
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    clock.advance(seconds=5)
    tick(db, clock, make)
    assert len(sink.messages) == 1
    held_until = enrollment(db, enrollment_id).next_due_at
    assert held_until == T0 + timedelta(days=1)
    clock.now = held_until
    tick(db, clock, make)
    assert len(sink.messages) == 2


def test_retired_collateral_holds_the_step_and_a_new_approval_releases_it(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    marketer = Actor(email="m@example.com", role=Role.MARKETER)
    approver = Actor(email="a@example.com", role=Role.SALES_APPROVER)
    with db.session_scope() as session:
        version = collateral_service.sendable_versions(session, ["planning-guide"], today=T0.date())
        collateral_service.transition(session, version["planning-guide"].id, "retire",
                                      actor=marketer, now=clock())
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    held = enrollment(db, enrollment_id)
    assert held.status == EnrollmentStatus.HELD
    assert held.hold_reason == "collateral 'planning-guide' is retired"
    assert sink.messages == []
    with db.session_scope() as session:
        new = collateral_service.add_version(session, "planning-guide", {
            "title": "Guide v2", "url": "https://cdn.example.com/guide-v2"}, actor=marketer,
            now=clock())
        collateral_service.transition(session, new.id, "submit", actor=marketer, now=clock())
        collateral_service.transition(session, new.id, "approve", actor=approver, now=clock())
    clock.advance(hours=1)
    tick(db, clock, make)
    assert len(sink.messages) == 1
    assert "guide-v2" not in sink.messages[0].get_body(("html",)).get_content()  # tracked
    with db.session_scope() as session:
        assert session.get(Enrollment, enrollment_id).status == EnrollmentStatus.ACTIVE
        links = session.execute(select(Message.links)).scalar_one()
        assert next(iter(links.values()))["url"] == "https://cdn.example.com/guide-v2"


def test_scheduled_enrollments_start_on_revisit_day(db, clock, sending):
    sink, make = sending
    setup_sequence(db, clock)
    reject(db, clock, revisit_on=(T0 + timedelta(days=2)).date())
    tick(db, clock, make)
    assert sink.messages == []
    clock.now = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    tick(db, clock, make)
    assert len(sink.messages) == 1


def test_an_smtp_server_that_never_answers_is_retried_not_duplicated(db, clock, smtp_server, service_env):
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
    settings = with_secret_key(load_settings({**service_env, "SMTP_URL": url}))
    try:
        setup_sequence(db, clock)
        enrollment_id = reject(db, clock)
        counts = tick(db, clock, lambda: Sending.from_settings(
            settings, messenger=SmtpMessenger(url, timeout=0.5)))
    finally:
        silent.close()
    assert counts.refused == 1  # no greeting: nothing was handed over, so it is safe to retry
    with db.session_scope() as session:
        message = session.execute(select(Message)).scalar_one()
        assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
        assert "cannot reach" in message.last_error
    assert enrollment(db, enrollment_id).next_due_at == clock() + timedelta(minutes=1)
    sink, good_url = smtp_server
    clock.advance(minutes=1)
    tick(db, clock, lambda: Sending.from_settings(settings, messenger=SmtpMessenger(good_url)))
    assert len(sink.messages) == 1


def test_a_window_ending_at_24_00_is_open_until_midnight(db, clock, sending):
    sink, make = sending
    document = copy.deepcopy(DOCUMENT)
    document["send_window"] = {**ALWAYS, "end": "24:00"}
    setup_sequence(db, clock, document)
    clock.now = datetime(2026, 11, 24, 23, 59, 30, tzinfo=UTC)
    reject(db, clock)
    tick(db, clock, make)
    assert len(sink.messages) == 1


def test_an_unsubscribe_ends_every_sequence_of_the_lead_at_once(db, clock, sending, client):
    sink, make = sending
    document = copy.deepcopy(DOCUMENT)
    document["stages"][0]["steps"][1]["duration"] = "P30D"  # a long wait after the first email
    setup_sequence(db, clock, document)
    enrollment_id = reject(db, clock)
    tick(db, clock, make)
    unsubscribe = sink.messages[0]["List-Unsubscribe"].strip("<>").removeprefix("http://127.0.0.1:8000")
    assert client.post(unsubscribe).status_code == 200
    tick(db, clock, make)  # no need to wait 30 days for the sequence to notice
    final = enrollment(db, enrollment_id)
    assert (final.status, final.exit_reason) == (EnrollmentStatus.EXITED, "unsubscribed")
