"""The webhooks over real HTTP: `nurture serve` (gunicorn) and `nurture worker` as processes,
a signed SendGrid batch stored and handed on by the worker, a redelivery counted once, and
refusals (a forged signature, a 10 MB body) that store nothing."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import pytest

from tests.provider_signing import fixture, sendgrid_key_pair, sign_sendgrid
from tests.test_drip_e2e import FLOW_TIMEOUT_S, System
from tests.test_drip_e2e import http as request
from tests.test_processes import wait_until
from tests.webhook_app import seed, stored_events


@pytest.fixture()
def system(service_env, smtp_server, app, tmp_path) -> Iterator[tuple[System, object]]:
    private_key, public_key = sendgrid_key_pair()
    running = System(service_env, smtp_server[1], tmp_path)
    running.env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key
    try:
        yield running, private_key
    finally:
        running.stop()


def post(system: System, body: bytes, headers: dict[str, str]):
    return request("POST", f"{system.url}/webhooks/sendgrid", body=body,
                headers={"Content-Type": "application/json", **headers})


def test_a_signed_batch_is_stored_handed_on_and_a_redelivery_counted_once(system, db):
    running, key = system
    running.start("serve", "worker")
    lead, message = seed(db, "example@test.com", "m-1001")
    body = json.dumps(fixture("sendgrid_events.json")).encode()
    headers = sign_sendgrid(key, int(time.time()), body)

    answer = post(running, body, headers)
    assert (answer.status, answer.json) == (200, {"accepted": 11, "duplicates": 0})
    assert len(stored_events(db)) == 11  # stored before the answer
    wait_until(lambda: all(r.handled_at for r in stored_events(db)), FLOW_TIMEOUT_S,
               "the worker to hand the events on")

    again = post(running, body, headers)
    assert (again.status, again.json) == (200, {"accepted": 0, "duplicates": 11})
    assert {(r.lead_id, r.message_id) for r in stored_events(db)} == {(lead, message)}


def test_refusals_over_http_store_nothing(system, db):
    running, key = system
    running.start("serve")
    body = json.dumps(fixture("sendgrid_events.json")).encode()
    forged = sign_sendgrid(sendgrid_key_pair()[0], int(time.time()), body)
    assert post(running, body, forged).status == 403
    good = sign_sendgrid(key, int(time.time()), body)
    assert post(running, body.replace(b"m-1001", b"m-9999"), good).status == 403
    assert announced_10_mb(running, key) == 413
    assert stored_events(db) == []



def announced_10_mb(running: System, key) -> int:
    """A signed 10 MB batch: answered from its headers (the server stops reading at 1 MiB, so
    a client still sending would see the connection closed under it)."""
    huge = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    connection.putrequest("POST", "/webhooks/sendgrid")
    headers = {"Content-Type": "application/json", "Content-Length": str(len(huge)),
               **sign_sendgrid(key, int(time.time()), huge)}
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    try:
        return connection.getresponse().status
    finally:
        connection.close()
