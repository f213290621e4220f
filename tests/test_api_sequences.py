"""Sequence documents through the API: validated whole, versioned, round-trippable, activation."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from campaigns import collateral as collateral_service
from campaigns.documents import SequenceDocument
from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.models import Role, Sequence, SequenceVersion
from tests.conftest import Api

LIBRARY = Path(__file__).resolve().parent.parent / "campaigns" / "library"
ALL_KEYS = ("planning-guide", "industry-benchmark", "customer-story-logistics", "roi-calculator",
            "executive-summary")

MINIMAL = {
    "key": "bad-timing-fast",
    "name": "Bad timing (fast)",
    "entry": {"reasons": ["bad_timing"]},
    "stages": [
        {"key": "one", "name": "One", "steps": [
            {"type": "email", "id": "hello", "template": "check-in", "collateral": ["planning-guide"]},
            {"type": "wait", "id": "pause", "duration": "PT10S"},
            {"type": "branch", "id": "clicked", "then": "bye",
             "condition": {"engaged": "click", "step": "hello", "within": "PT5S"}},
        ]},
        {"key": "two", "name": "Two", "steps": [
            {"type": "email", "id": "more", "template": "case-study"},
            {"type": "exit", "id": "bye"},
        ]},
    ],
}


def make_collateral(db, keys=ALL_KEYS, *, approve=True, expires_on=None):
    marketer = Actor(email="m@example.com", role=Role.MARKETER)
    approver = Actor(email="a@example.com", role=Role.SALES_APPROVER)
    now = utcnow()
    with db.session_scope() as session:
        for key in keys:
            version = collateral_service.create_collateral(
                session, key, {"title": key.title(), "url": f"https://cdn.example.com/{key}",
                               "expires_on": expires_on}, actor=marketer, now=now)
            if approve:
                collateral_service.transition(session, version.id, "submit", actor=marketer, now=now)
                collateral_service.transition(session, version.id, "approve", actor=approver, now=now)


@pytest.fixture()
def marketer(client, make_token):
    return Api(client, make_token(Role.MARKETER, "marketer"))


def test_the_shipped_examples_import_as_yaml_and_round_trip(marketer, db):
    make_collateral(db)
    for path in sorted(LIBRARY.glob("*.yaml")):
        response = marketer.post("/api/v1/sequences", data=path.read_bytes(),
                                 content_type="application/yaml")
        assert response.status_code == 201, response.json
        sequence_id = response.json["id"]
        exported = marketer.get(f"/api/v1/sequences/{sequence_id}?format=yaml")
        assert exported.mimetype == "application/yaml"
        original, round_tripped = yaml.safe_load(path.read_text()), yaml.safe_load(exported.data)
        # export spells out defaults; apart from that it is exactly what was written
        assert round_tripped == SequenceDocument.model_validate(original).export()
        assert round_tripped["stages"][0]["steps"][0]["id"] == original["stages"][0]["steps"][0]["id"]
        again = marketer.post("/api/v1/sequences", data=exported.data, content_type="application/yaml")
        assert again.status_code == 200  # unchanged: no new version
        assert again.json["version"] == 1


def test_export_is_the_stored_document_and_reimports_unchanged(marketer, db, count):
    make_collateral(db)
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    exported = marketer.get(f"/api/v1/sequences/{created['id']}")
    assert exported.status_code == 200
    assert exported.headers["Nurture-Sequence-Version"] == "1"
    document = exported.json
    assert document["stages"][0]["steps"][2]["condition"]["within"] == "PT5S"
    assert document["send_window"] == {"days": ["mon", "tue", "wed", "thu", "fri"],
                                       "start": "09:00", "end": "17:00"}
    assert marketer.post("/api/v1/sequences", json=document).status_code == 200
    assert count(SequenceVersion) == 1


def test_editing_makes_a_new_version_and_keeps_the_old(marketer, db, count):
    make_collateral(db)
    first = marketer.post("/api/v1/sequences", json=MINIMAL).json
    edited = copy.deepcopy(MINIMAL)
    edited["stages"][0]["steps"][1]["duration"] = "PT20S"
    second = marketer.post("/api/v1/sequences", json=edited)
    assert second.status_code == 201
    assert (second.json["id"], second.json["version"]) == (first["id"], 2)
    old = marketer.get(f"/api/v1/sequences/{first['id']}?version=1").json
    assert old["stages"][0]["steps"][1]["duration"] == "PT10S"
    assert count(Sequence) == 1 and count(SequenceVersion) == 2


def test_activation_refuses_unapproved_collateral_naming_each_step(marketer, db):
    make_collateral(db, ("planning-guide",), approve=False)
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    response = marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    assert response.status_code == 409
    assert response.json["errors"] == {
        "stages[0].steps[0] (hello)": [
            "collateral 'planning-guide' is not approved by sales (it is draft)"
        ]
    }
    listed = marketer.get("/api/v1/sequences").json["sequences"][0]
    assert listed["status"] == "draft" and listed["active_version"] is None


def test_activation_refuses_expired_collateral(marketer, db):
    make_collateral(db, ("planning-guide",), expires_on=date.today() - timedelta(days=1))
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    response = marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    assert response.status_code == 409
    assert "expired" in response.json["errors"]["stages[0].steps[0] (hello)"][0]


def test_activate_then_pause(marketer, db):
    make_collateral(db)
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    active = marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    assert active.status_code == 200, active.json
    assert (active.json["status"], active.json["active_version"]) == ("active", 1)
    paused = marketer.post(f"/api/v1/sequences/{created['id']}/pause")
    assert paused.json["status"] == "paused"


def _invalid(marketer, document):
    response = marketer.post("/api/v1/sequences", json=document)
    assert response.status_code == 422, response.json
    return response.json["errors"]


def _edit(path_fn):
    document = copy.deepcopy(MINIMAL)
    path_fn(document)
    return document


@pytest.mark.parametrize(
    ("edit", "path", "fragment"),
    [
        (lambda d: d["stages"][1]["steps"].insert(0, {"type": "sms", "id": "x"}),
         "stages[1].steps[0]", "does not match any of the expected tags"),
        (lambda d: d["stages"][0]["steps"][2].update(then="nowhere"),
         "stages[0].steps[2].branch.then", "no step 'nowhere'"),
        (lambda d: d["stages"][0]["steps"][2]["condition"].update(step="ghost"),
         "stages[0].steps[2].branch.condition.step", "no step 'ghost'"),
        (lambda d: d["stages"][0]["steps"][1].update(duration="-PT10S"),
         "stages[0].steps[1].wait.duration", "longer than zero"),
        (lambda d: d["stages"][0]["steps"][1].update(duration="P5Y"),
         "stages[0].steps[1].wait.duration", "longer than 400 days"),
        (lambda d: d["stages"][0]["steps"][1].update(duration="ten seconds"),
         "stages[0].steps[1].wait.duration", "ISO 8601"),
        (lambda d: d["stages"][0]["steps"][0].update(subject="{% if %}"),
         "stages[0].steps[0].email.subject", "line 1"),
        (lambda d: d["stages"][0]["steps"][0].update(subject="{{ lead.__class__.__mro__ }}"),
         "stages[0].steps[0].email.subject", "unsafe"),
        (lambda d: d["stages"][0]["steps"][0].update(template="no-such-template"),
         "stages[0].steps[0].email.template", "no template"),
        (lambda d: d["stages"][0]["steps"][0].update(collateral=["missing-asset"]),
         "stages[0].steps[0].email.collateral[0]", "no collateral 'missing-asset'"),
        (lambda d: d["stages"][1]["steps"][1].update(id="hello"),
         "stages[1].steps[1].id", "used twice"),
        (lambda d: d.update(entry={"reasons": []}), "entry", "at least one"),
        (lambda d: d.update(entry={"reasons": ["meh"]}), "entry.reasons[0]", "must be one of"),
        (lambda d: d.update(stages=[]), "stages", "at least 1"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
        (lambda d: d.update(name="Bad\x00name"), "body", "NUL character (U+0000) at name"),
    ],
)
def test_invalid_documents_are_422_naming_the_path(marketer, db, count, edit, path, fragment):
    make_collateral(db)
    errors = _invalid(marketer, _edit(edit))
    assert path in errors, errors
    assert any(fragment in message for message in errors[path]), errors[path]
    assert count(Sequence) == 0


def test_yaml_with_aliases_or_bad_syntax_is_400(marketer, count):
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    assert marketer.post("/api/v1/sequences", data=bomb, content_type="application/yaml").status_code == 400
    assert marketer.post("/api/v1/sequences", data="key: [", content_type="application/yaml").status_code == 400
    assert marketer.post("/api/v1/sequences", data="{", content_type="application/json").status_code == 400
    assert marketer.post("/api/v1/sequences", data="x", content_type="text/plain").status_code == 415
    assert count(Sequence) == 0


def test_reps_may_not_import_sequences(client, make_token):
    rep = Api(client, make_token(Role.REP))
    assert rep.post("/api/v1/sequences", json=MINIMAL).status_code == 403


def test_unknown_sequence_is_404(marketer):
    assert marketer.get("/api/v1/sequences/4242").status_code == 404
    assert marketer.post("/api/v1/sequences/4242/activate").status_code == 404
    assert marketer.get("/api/v1/sequences/1?version=9").status_code == 404


def test_retired_collateral_shows_the_paused_steps_of_a_live_sequence(marketer, db, client, make_token):
    make_collateral(db)
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    assert marketer.get("/api/v1/sequences").json["sequences"][0]["paused_steps"] == {}
    version_id = marketer.get("/api/v1/collateral/planning-guide").json["versions"][0]["id"]
    assert marketer.post(f"/api/v1/collateral/versions/{version_id}/retire").status_code == 200
    listed = marketer.get("/api/v1/sequences").json["sequences"][0]
    assert listed["status"] == "active"
    assert listed["paused_steps"] == {
        "stages[0].steps[0] (hello)": ["collateral 'planning-guide' is retired"]
    }


def test_enrolled_leads_move_to_a_new_version_only_by_explicit_migration(marketer, api, db):
    make_collateral(db)
    created = marketer.post("/api/v1/sequences", json=MINIMAL).json
    marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    enrollment = api.post("/api/v1/rejections", json={
        "lead": {"email": "m@example.com"}, "rep_email": "r@example.com", "reason": "bad_timing",
    }).json["enrollment"]
    edited = copy.deepcopy(MINIMAL)
    edited["stages"][0]["steps"][1]["duration"] = "PT20S"
    marketer.post("/api/v1/sequences", json=edited)
    marketer.post(f"/api/v1/sequences/{created['id']}/activate")
    lead = api.get("/api/v1/leads?email=m@example.com").json
    assert lead["enrollments"][0]["version_id"] == enrollment["version_id"]  # still on v1
    migrated = marketer.post(f"/api/v1/sequences/{created['id']}/migrate", json={"from_version": 1})
    assert migrated.status_code == 200, migrated.json
    assert migrated.json == {"from_version": 1, "to_version": 2, "moved": 1, "stayed": []}
    lead = api.get("/api/v1/leads?email=m@example.com").json
    assert lead["enrollments"][0]["version_id"] != enrollment["version_id"]
    assert marketer.post(f"/api/v1/sequences/{created['id']}/migrate",
                         json={"from_version": 2}).status_code == 409
    assert marketer.post(f"/api/v1/sequences/{created['id']}/migrate",
                         json={"from_version": "1"}).status_code == 422


def test_a_parsed_version_is_remembered_but_never_for_other_data_under_the_same_id():
    from campaigns.documents import version_document

    first = copy.deepcopy(MINIMAL)
    assert version_document(987_654, first) is version_document(987_654, copy.deepcopy(first))
    first["name"] = "changed after parsing"  # the caller's dict, not the remembered one
    other = copy.deepcopy(MINIMAL) | {"name": "Another sequence, same id"}
    assert version_document(987_654, other).name == "Another sequence, same id"
