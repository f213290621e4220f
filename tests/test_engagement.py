"""Storing engagement events: each once, matched to messages and leads, suppressions applied,
handed on once (nurture.engagement.ingest, .handling, .webhooks)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from nurture.engagement.handling import count_unhandled, handle_events, unhandled_ranges
from nurture.engagement.ingest import IncomingEvent, store_events
from nurture.engagement.providers import WebhookRefused
from nurture.engagement.webhooks import check_mailgun_token
from nurture.errors import InvalidInput
from nurture.models import (
    CollateralVersion,
    EngagementEvent,
    Enrollment,
    EnrollmentStatus,
    EventType,
    Lead,
    LifecycleStage,
    MailgunToken,
    Message,
    MessageStatus,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Suppression,
    SuppressionReason,
)
from tests.test_drip_engine import DOCUMENT

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def make_lead(session, email: str) -> int:
    lead = Lead(email=email, lifecycle_stage=LifecycleStage.NURTURING, created_at=NOW,
                updated_at=NOW, attributes={})
    session.add(lead)
    session.flush()
    return lead.id


def make_message(
    session, lead_id: int, *, name: str = "msg-1", sent_at: datetime | None = NOW,
    links: dict | None = None, next_due_at: datetime | None = None,
) -> int:
    """A sent message of a live enrollment of the lead, waiting at a branch on engagement."""
    sequence = session.execute(select(Sequence).where(Sequence.key == "s")).scalar_one_or_none()
    if sequence is None:
        sequence = Sequence(key="s", name="S", status=SequenceStatus.ACTIVE, created_at=NOW,
                            updated_at=NOW)
        session.add(sequence)
        session.flush()
        session.add(SequenceVersion(sequence_id=sequence.id, version=1, document=DOCUMENT,
                                    created_at=NOW))
        session.flush()
    version_id = session.execute(select(SequenceVersion.id)).scalars().first()
    enrollment = Enrollment(
        lead_id=lead_id, sequence_id=sequence.id, version_id=version_id,
        status=EnrollmentStatus.ACTIVE, step_id="clicked", enrolled_at=NOW,
        next_due_at=next_due_at or NOW + timedelta(days=3),
    )
    session.add(enrollment)
    session.flush()
    email = session.get(Lead, lead_id).email
    message = Message(
        message_id=name, enrollment_id=enrollment.id, step_id="hello", lead_id=lead_id,
        to_address=email, subject="Hi", status=MessageStatus.SENT, created_at=NOW,
        sent_at=sent_at, links=links or {},
    )
    session.add(message)
    session.flush()
    return message.id


def event(**kw) -> IncomingEvent:
    fields = {"source": "sendgrid", "source_event_id": "e1", "type": EventType.OPEN,
              "occurred_at": NOW, "email": None, "nurture_message_id": "msg-1"}
    return IncomingEvent(**(fields | kw))


def events_in(session) -> list[EngagementEvent]:
    return session.execute(select(EngagementEvent).order_by(EngagementEvent.id)).scalars().all()


def test_a_batch_is_stored_once_and_a_redelivery_changes_nothing(db):
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        message = make_message(session, lead)
        batch = [event(source_event_id=f"e{i}") for i in range(5)]
        first = store_events(session, batch, now=NOW)
    assert (first.accepted, first.duplicates, first.lead_ids) == (5, 0, frozenset({lead}))
    with db.session_scope() as session:
        again = store_events(session, batch, now=NOW + timedelta(minutes=1))
        assert (again.accepted, again.duplicates, again.event_ids) == (0, 5, ())
        stored = events_in(session)
        assert len(stored) == 5
        assert {(e.lead_id, e.message_id, e.received_at) for e in stored} == {(lead, message, NOW)}


def test_the_same_id_from_two_sources_is_two_events(db):
    with db.session_scope() as session:
        stored = store_events(session, [event(), event(source="mailgun")], now=NOW)
    assert stored.accepted == 2


def test_an_exact_repeat_inside_a_batch_is_one_event_and_a_conflicting_one_refuses_all(db, count):
    with db.session_scope() as session:
        stored = store_events(session, [event(), event(), event(source_event_id="e2")], now=NOW)
    assert (stored.accepted, stored.duplicates) == (2, 1)
    with pytest.raises(InvalidInput) as refused, db.session_scope() as session:
        store_events(session, [event(source_event_id="x"), event(source_event_id="y"),
                               event(source_event_id="y", type=EventType.CLICK)], now=NOW)
    assert list(refused.value.errors) == ["events[2].id"]
    assert count(EngagementEvent) == 2


def test_a_time_far_in_the_future_refuses_the_batch(db, count):
    with pytest.raises(InvalidInput) as refused, db.session_scope() as session:
        store_events(session, [event(source_event_id="ok"),
                               event(source_event_id="late", occurred_at=NOW + timedelta(days=2))],
                     now=NOW)
    assert list(refused.value.errors) == ["events[1].occurred_at"]
    assert count(EngagementEvent) == 0
    with db.session_scope() as session:  # a little clock skew is fine
        assert store_events(session, [event(occurred_at=NOW + timedelta(minutes=5))],
                            now=NOW).accepted == 1


def test_matched_by_message_id_first_then_by_address_else_unmatched(db):
    with db.session_scope() as session:
        ada = make_lead(session, "ada@example.com")
        grace = make_lead(session, "grace@example.com")
        message = make_message(session, ada)
        store_events(session, [
            # the message wins over an address that names someone else
            event(source_event_id="a", email="grace@example.com"),
            event(source_event_id="b", nurture_message_id=None, email=" Grace@Example.COM "),
            event(source_event_id="c", nurture_message_id="unknown", email="nobody@example.com"),
        ], now=NOW)
        by_id = {e.source_event_id: e for e in events_in(session)}
    assert (by_id["a"].lead_id, by_id["a"].message_id) == (ada, message)
    assert (by_id["b"].lead_id, by_id["b"].message_id) == (grace, None)
    assert (by_id["c"].lead_id, by_id["c"].message_id) == (None, None)
    assert by_id["c"].properties["email"] == "nobody@example.com"
    assert by_id["c"].properties["nurture_message_id"] == "unknown"


def test_a_batch_costs_the_same_statements_whatever_its_size(db):
    from sqlalchemy import event as sa_event

    def statements(size: int) -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        with db.session_scope() as session:
            for i in range(size):
                make_lead(session, f"lead{size}-{i}@example.com")
        sa_event.listen(db.engine, "before_cursor_execute", listener)
        try:
            with db.session_scope() as session:
                store_events(session, [
                    event(source_event_id=f"{size}-{i}", nurture_message_id=None,
                          email=f"lead{size}-{i}@example.com", type=EventType.CLICK,
                          url="https://example.com/")
                    for i in range(size)], now=NOW)
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", listener)
        return len([s for s in seen if not s.upper().startswith(("BEGIN", "COMMIT"))])

    assert statements(3) == statements(300)


def test_hard_bounces_complaints_and_unsubscribes_suppress_and_stop_nurture(db):
    later = NOW + timedelta(days=3)
    with db.session_scope() as session:
        leads = {name: make_lead(session, f"{name}@example.com")
                 for name in ("hard", "soft", "spam", "unsub", "other")}
        for name, lead in leads.items():
            make_message(session, lead, name=f"m-{name}", next_due_at=later)
        stored = store_events(session, [
            event(source_event_id="1", type=EventType.BOUNCE, bounce_class="hard",
                  nurture_message_id="m-hard"),
            event(source_event_id="2", type=EventType.BOUNCE, bounce_class="soft",
                  nurture_message_id="m-soft"),
            event(source_event_id="3", type=EventType.SPAM_COMPLAINT, nurture_message_id="m-spam"),
            event(source_event_id="4", type=EventType.UNSUBSCRIBE, nurture_message_id=None,
                  email="unsub@example.com"),
            event(source_event_id="5", type=EventType.OPEN, nurture_message_id="m-other"),
        ], now=NOW)
    assert sorted(stored.suppressed) == ["hard@example.com", "spam@example.com",
                                         "unsub@example.com"]
    with db.session_scope() as session:
        reasons = dict(session.execute(select(Suppression.email, Suppression.reason)).all())
        due = dict(session.execute(select(Enrollment.lead_id, Enrollment.next_due_at)).all())
    assert reasons == {"hard@example.com": SuppressionReason.HARD_BOUNCE,
                       "spam@example.com": SuppressionReason.COMPLAINT,
                       "unsub@example.com": SuppressionReason.UNSUBSCRIBED}
    # their sequences are due now (the engine exits them: suppressed); the others wait
    assert {name for name, lead in leads.items() if due[lead] == NOW} == {"hard", "spam", "unsub"}
    with db.session_scope() as session:  # a redelivered complaint does not touch it again
        assert store_events(session, [event(source_event_id="3", type=EventType.SPAM_COMPLAINT,
                                            nurture_message_id="m-spam")],
                            now=later).suppressed == ()


def test_handling_takes_each_event_once_and_wakes_on_human_engagement_only(db):
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead)
        stored = store_events(session, [
            event(source_event_id="human", type=EventType.CLICK, url="https://a.example/"),
            event(source_event_id="proxy", user_agent="Mozilla/5.0"),
        ], now=NOW)
    first, last = stored.id_range
    with db.session_scope() as session:
        assert unhandled_ranges(session, received_before=NOW + timedelta(seconds=1)) == [
            (first, last)]
        handled = handle_events(session, first, last, now=NOW)
    assert (handled.events, handled.leads, handled.woken) == (2, 1, 1)
    with db.session_scope() as session:
        assert handle_events(session, first, last, now=NOW).events == 0  # a retried job
        assert count_unhandled(session) == 0
        assert {e.handled_at for e in events_in(session)} == {NOW}


def test_a_mailgun_token_is_a_redelivery_with_the_same_event_and_a_forgery_with_another(db, count):
    with db.session_scope() as session:
        assert check_mailgun_token(session, "tok", NOW, "d1", now=NOW) is True
    with db.session_scope() as session:
        assert check_mailgun_token(session, "tok", NOW, "d1", now=NOW) is False
    with pytest.raises(WebhookRefused) as refused, db.session_scope() as session:
        check_mailgun_token(session, "tok", NOW, "d2", now=NOW)
    assert refused.value.status == 403
    assert count(MailgunToken) == 1


def test_stored_events_keep_what_they_were_given(db):
    given = event(source_event_id="k", type=EventType.CLICK, url="https://a.example/x",
                  user_agent="Mozilla/5.0 (Macintosh) Safari", ip="203.0.113.9",
                  properties={"provider_type": "click"})
    with db.session_scope() as session:
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead, links={"1": {"url": "https://a.example/x",
                                                 "collateral_version_id": None}})
        store_events(session, [given, replace(given, source_event_id="k2")], now=NOW)
        stored = events_in(session)[0]
    assert (stored.type, stored.url, stored.is_machine) == (EventType.CLICK, given.url, False)
    assert stored.properties == {"provider_type": "click", "user_agent": given.user_agent,
                                 "ip": "203.0.113.9"}


def test_a_provider_click_points_to_the_collateral_of_the_link_it_followed(db):
    from tests.test_api_sequences import make_collateral

    make_collateral(db, ["guide"])
    with db.session_scope() as session:
        version = session.execute(select(CollateralVersion.id)).scalar_one()
        lead = make_lead(session, "ada@example.com")
        make_message(session, lead, links={
            "0": {"url": "https://cdn.example.com/guide", "collateral_version_id": version},
            "1": {"url": "https://www.example.com/", "collateral_version_id": None}})
        store_events(session, [
            event(source_event_id="a", type=EventType.CLICK, url="https://cdn.example.com/guide"),
            event(source_event_id="b", type=EventType.CLICK, url="https://www.example.com/",
                  occurred_at=NOW + timedelta(hours=1)),
        ], now=NOW + timedelta(hours=2))
        stored = {e.source_event_id: e.collateral_version_id for e in events_in(session)}
    assert stored == {"a": version, "b": None}
