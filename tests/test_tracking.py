"""Our own tracking links (/t/o, /t/c): each open and click is an event of the message, a
click with the collateral version its link pointed to; forged tokens record nothing."""

from __future__ import annotations

from sqlalchemy import select

from nurture.models import CollateralVersion, EventType
from nurture.tracking.tokens import Signer
from tests.test_api_sequences import make_collateral
from tests.webhook_app import scoring_jobs, seed, stored_events

SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"


def test_opens_and_clicks_record_the_message_and_the_collateral(app, db, client, service_env):
    make_collateral(db, ["guide"])
    with db.session_scope() as session:
        version = session.execute(select(CollateralVersion.id)).scalar_one()
    lead, message = seed(db, "ada@example.com", "m-1", links={
        "0": {"url": "https://cdn.example.com/guide.pdf", "collateral_version_id": version},
        "1": {"url": "https://www.example.com/", "collateral_version_id": None}})
    signer = Signer(service_env["SECRET_KEY"])
    pixel = client.get(f"/t/o/{signer.open_token(message)}", headers={"User-Agent": SAFARI})
    assert (pixel.status_code, pixel.mimetype) == (200, "image/gif")
    click = client.get(f"/t/c/{signer.click_token(message, 0)}", headers={"User-Agent": SAFARI})
    assert (click.status_code, click.headers["Location"]) == (302,
                                                               "https://cdn.example.com/guide.pdf")
    rows = stored_events(db)
    assert [(r.type, r.lead_id, r.message_id, r.source) for r in rows] == [
        (EventType.OPEN, lead, message, "tracking"), (EventType.CLICK, lead, message, "tracking")]
    assert (rows[1].url, rows[1].collateral_version_id) == ("https://cdn.example.com/guide.pdf",
                                                            version)
    assert rows[1].properties["link"] == 0
    assert all(r.handled_at is not None for r in rows)  # handed on in the request
    assert scoring_jobs(app) == [(rows[0].id, rows[0].id)]  # and to scoring after it (one job
    # waits for both requests: workers/coalescing.py)


def test_forged_or_unknown_tokens_record_nothing(app, db, client, service_env):
    _, message = seed(db, "ada@example.com", "m-1")
    signer = Signer(service_env["SECRET_KEY"])
    assert client.get("/t/o/forged").status_code == 200  # the pixel whatever the token
    assert client.get("/t/c/forged").status_code == 404
    assert client.get(f"/t/c/{signer.click_token(message, 7)}").status_code == 404  # no link 7
    assert client.get(f"/t/o/{Signer('another-key' * 4).open_token(message)}").status_code == 200
    assert client.get(f"/t/o/{signer.open_token(message + 1000)}").status_code == 200
    assert stored_events(db) == []
