"""The scoring model and SLA pages (nurture/web/admin/scoring.py): the versions in force, the
rules editor (a table with add, remove and reorder; the API's validator on each field), the
backtest beside the active model, submitting, approving (who and when), activating."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.handoffs import sla as slas
from nurture.models import Backtest, DocumentStatus, Role, ScoringModel, Sla
from nurture.scoring import lifecycle as models
from nurture.web.admin import scoring_table
from tests.test_admin_approvals import MARA, SAM, scoring_draft, sla_draft, token_of
from tests.test_auth import make_user, sign_in


@pytest.fixture()
def people(db):
    return {"mara": make_user(db, MARA, Role.MARKETER),
            "sam": make_user(db, SAM, Role.SALES_APPROVER),
            "root": make_user(db, "root@example.com", Role.ADMIN)}


@pytest.fixture()
def default_model(db):
    with db.session_scope() as session:
        return models.ensure_default_model(session, now=utcnow()).id


class _Fields(HTMLParser):
    """A form's fields as a browser posts them (checkboxes only when checked; no buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") in ("text", "hidden"):
            self.data[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = a.get("value") or "y"
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def editor_form(client, path="/admin/scoring/models/new"):
    parser = _Fields()
    parser.feed(client.get(path).text)
    return parser.data


def test_the_page_shows_the_versions_in_force_and_every_version(client, db, people,
                                                                  default_model):
    scoring_draft(db)
    sign_in(client, SAM)
    html = client.get("/admin/scoring").text
    assert "Scoring model in force" in html
    assert re.search(r'Default B2B model</a> <span class="version-badge">v1</span>', html)
    assert "Recycled to sales at <strong>60" in html
    assert "The settings' default" in html  # no SLA version active
    assert "Stricter model" in html and "installation" in html
    assert "New draft" not in html  # a sales approver does not draft


def test_scoring_pages_are_for_staff_and_drafting_for_marketers(client, db, people,
                                                                 default_model):
    assert client.get("/admin/scoring").headers["Location"].startswith("/auth/sign-in")
    make_user(db, "rita@example.com", Role.REP)
    sign_in(client, "rita@example.com")
    assert client.get("/admin/scoring").status_code == 403
    client2 = client.application.test_client()
    sign_in(client2, SAM)
    assert client2.get("/admin/scoring/models/new").status_code == 403
    assert client2.get("/admin/scoring/slas/new").status_code == 403
    assert client2.get(f"/admin/scoring/models/{default_model}").status_code == 200


def test_the_editor_starts_from_the_active_model_and_saves_a_new_draft(client, db, people,
                                                                         default_model):
    sign_in(client, MARA)
    data = editor_form(client)
    assert data["name"] == "Default B2B model" and data["threshold_total"] == "60"
    assert int(data["fit-count"]) >= 5 and data["fit-0-rule"] == "senior_title"
    data.update({"name": "Sharper model", "threshold_total": "65", "op": "save",
                 "csrf_token": token_of(client, "/admin/scoring")})
    answer = client.post("/admin/scoring/models/new", data=data)
    assert answer.status_code == 302, answer.text
    with db.session_scope() as session:
        model = session.execute(select(ScoringModel).where(ScoringModel.version == 2)).scalar_one()
        active = models.active_model(session)
        assert model.status == DocumentStatus.DRAFT and model.created_by == MARA
        assert model.document["thresholds"]["total"] == 65
        # every rule came through the table unchanged
        for kind in ("fit", "engagement", "negative"):
            assert model.document[kind] == active.document[kind], kind
    page = client.get(answer.headers["Location"]).text
    assert "Saved as draft version 2" in page
    assert re.search(r"<del>60</del>.*<ins>65</ins>", page, re.S)


def test_rows_are_added_removed_and_moved_without_saving(client, db, people, default_model):
    sign_in(client, MARA)
    data = editor_form(client)
    data["csrf_token"] = token_of(client, "/admin/scoring")
    first, second = data["fit-0-rule"], data["fit-1-rule"]
    moved = client.post("/admin/scoring/models/new", data={**data, "op": "down:fit:0"}).text
    assert re.search(rf'name="fit-0-rule" id="fit-0-rule" value="{second}"', moved)
    assert re.search(rf'name="fit-1-rule" id="fit-1-rule" value="{first}"', moved)
    count = int(data["fit-count"])
    added = client.post("/admin/scoring/models/new", data={**data, "op": "add:fit"}).text
    assert f'name="fit-count" value="{count + 1}"' in added
    assert f'name="fit-{count}-rule" id="fit-{count}-rule" value=""' in added
    removed = client.post("/admin/scoring/models/new", data={**data, "op": "remove:fit:0"}).text
    assert f'name="fit-count" value="{count - 1}"' in removed
    assert f'value="{first}"' not in removed
    with db.session_scope() as session:  # nothing was stored
        assert len(session.execute(select(ScoringModel)).scalars().all()) == 1


def test_a_malformed_rules_table_gets_the_apis_messages_on_the_fields(client, db, people,
                                                                      default_model, api):
    sign_in(client, MARA)
    data = editor_form(client)
    data.update({"csrf_token": token_of(client, "/admin/scoring"), "op": "save",
                 "engagement-0-points": "lots", "fit-0-when": "title resembles boss",
                 "engagement-1-cap_day": "-5", "threshold_total": ""})
    answer = client.post("/admin/scoring/models/new", data=data)
    assert answer.status_code == 422
    html = answer.text
    # the API's validator on the same document names the same paths with the same messages
    document = scoring_table.to_document(scoring_table.from_form(data))
    refused = api.post("/api/v1/scoring/models", json=document)
    assert refused.status_code == 422
    expected = refused.json["errors"]
    assert set(expected) >= {"engagement[0].points", "fit[0].when[0].op",
                             "engagement[1].cap.per_day", "thresholds.total"}
    for field, path in (("engagement-0-points", "engagement[0].points"),
                        ("fit-0-when", "fit[0].when[0].op"),
                        ("engagement-1-cap_day", "engagement[1].cap.per_day"),
                        ("threshold_total", "thresholds.total")):
        error = re.search(rf'<p class="error" id="{field}-error">([^<]+)</p>', html)
        assert error, field
        assert expected[path][0] in error.group(1).replace("&#39;", "'"), (field, error.group(1))
        assert f'id="{field}" value' in html or f'id="{field}" rows' in html \
            or f'name="{field}" value' in html
        assert re.search(rf'(name|id)="{field}"[^>]*aria-invalid="true"', html), field
    assert 'value="lots"' in html  # what was typed stays
    with db.session_scope() as session:
        assert len(session.execute(select(ScoringModel)).scalars().all()) == 1


def test_a_backtest_runs_and_shows_beside_the_active_model(client, db, people, default_model):
    model_id = scoring_draft(db)
    sign_in(client, MARA)
    token = token_of(client, f"/admin/scoring/models/{model_id}")
    answer = client.post(f"/admin/scoring/models/{model_id}/backtest",
                         data={"csrf_token": token, "days": "30"})
    assert answer.status_code == 302
    with db.session_scope() as session:
        backtest = session.execute(select(Backtest)).scalar_one()
        assert backtest.status.value == "done" and backtest.compared_model_id == default_model
    html = client.get(f"/admin/scoring/models/{model_id}").text
    assert "This draft (v2)" in html and "Active (v1)" in html
    assert "Leads recycled to sales" in html
    bad = client.post(f"/admin/scoring/models/{model_id}/backtest",
                      data={"csrf_token": token, "days": "9999"})
    assert bad.status_code == 422 and "From 1 to 730 days." in bad.text


def test_submit_approve_and_activate_show_who_and_when(client, db, people, default_model):
    with db.session_scope() as session:
        model = models.create_model(session, models.get_model(session, default_model).document
                                    | {"name": "Next model"}, actor=MARA, now=utcnow())
        model_id = model.id
    sign_in(client, MARA)
    token = token_of(client, f"/admin/scoring/models/{model_id}")
    page = client.get(f"/admin/scoring/models/{model_id}").text
    assert "Submit to sales</button>" in page and "Activate" not in page
    # activating before both approvals is refused, plainly
    refused = client.post(f"/admin/scoring/models/{model_id}/activate",
                          data={"csrf_token": token})
    assert refused.status_code == 409 and "lacks the marketer and sales_approver approval" \
        in refused.text
    assert client.post(f"/admin/scoring/models/{model_id}/approve",
                       data={"csrf_token": token}).status_code == 302
    page = client.get(f"/admin/scoring/models/{model_id}").text
    assert "waits in the sales approvers" in page and "Waiting for a sales approver." in page
    assert re.search(r'signature signed">\s*<span class="signature-team">Marketing</span>\s*'
                     r'<span class="signature-who">mara@example.com</span>', page)
    with db.session_scope() as session:
        models.approve_model(session, model_id, actor=Actor(SAM, Role.SALES_APPROVER),
                             now=utcnow())
    page = client.get(f"/admin/scoring/models/{model_id}").text
    assert re.search(r'<span class="signature-who">sam@example.com</span>', page)
    assert "Activate v2</button>" in page
    answer = client.post(f"/admin/scoring/models/{model_id}/activate", data={"csrf_token": token})
    assert answer.status_code == 302
    assert "is active (version 1 is retired)" in client.get(answer.headers["Location"]).text
    with db.session_scope() as session:
        assert models.active_model(session).id == model_id
    overview = client.get("/admin/scoring").text
    assert re.search(r'Next model</a> <span class="version-badge">v2</span>', overview)


def test_a_marketer_may_withdraw_the_submission(client, db, people, default_model):
    model_id = scoring_draft(db)
    sign_in(client, MARA)
    token = token_of(client, f"/admin/scoring/models/{model_id}")
    assert client.post(f"/admin/scoring/models/{model_id}/withdraw",
                       data={"csrf_token": token}).status_code == 302
    with db.session_scope() as session:
        summary = models.model_summary(session, models.get_model(session, model_id))
        assert summary["approvals"][0]["withdrawn_by"] == MARA


def test_an_sla_draft_is_written_as_yaml_and_errors_name_the_term(client, db, people):
    sign_in(client, MARA)
    form = client.get("/admin/scoring/slas/new").text
    assert "first_action:" in form
    token = token_of(client, "/admin/scoring")
    bad = client.post("/admin/scoring/slas/new", data={
        "csrf_token": token,
        "document": "name: Faster\nfirst_action:\n  within: soon\n"})
    assert bad.status_code == 422
    assert "<code>first_action.within</code>" in bad.text
    assert "within: soon" in bad.text  # what was typed stays
    broken = client.post("/admin/scoring/slas/new", data={"csrf_token": token,
                                                          "document": "name: [unclosed"})
    assert broken.status_code == 422 and "not valid YAML" in broken.text
    good = client.post("/admin/scoring/slas/new", data={
        "csrf_token": token, "document": "name: Faster\nfirst_action:\n  within: PT30M\n"})
    assert good.status_code == 302
    with db.session_scope() as session:
        sla = session.execute(select(Sla)).scalar_one()
        assert sla.name == "Faster" and sla.status == DocumentStatus.DRAFT
    page = client.get(good.headers["Location"]).text
    assert "first_action.within" in page and "PT30M" in page


def test_an_sla_goes_from_draft_to_active(client, db, people):
    sla_id = sla_draft(db)
    with db.session_scope() as session:
        slas.approve_sla(session, sla_id, actor=Actor(SAM, Role.SALES_APPROVER), now=utcnow())
    sign_in(client, "root@example.com")
    token = token_of(client, f"/admin/scoring/slas/{sla_id}")
    answer = client.post(f"/admin/scoring/slas/{sla_id}/activate", data={"csrf_token": token})
    assert answer.status_code == 302
    overview = client.get("/admin/scoring").text
    assert "SLA in force" in overview and "Faster SLA" in overview
    assert "First answer within <strong>30 min</strong>" in overview


def test_the_scoring_forms_refuse_a_post_without_csrf_token(client, db, people, default_model):
    model_id = scoring_draft(db)
    sign_in(client, MARA)
    assert client.post(f"/admin/scoring/models/{model_id}/approve").status_code == 400
    assert client.post("/admin/scoring/models/new", data={"op": "save", "name": "x"}
                       ).status_code == 400
    with db.session_scope() as session:
        assert len(session.execute(select(ScoringModel)).scalars().all()) == 2
        summary = models.model_summary(session, models.get_model(session, model_id))
        assert all(a["withdrawn_at"] is None for a in summary["approvals"])


def test_an_admin_cannot_approve_for_either_team(client, db, people, default_model):
    model_id = scoring_draft(db)
    sign_in(client, "root@example.com")
    token = token_of(client, "/admin/scoring")
    assert client.post(f"/admin/scoring/models/{model_id}/approve",
                       data={"csrf_token": token}).status_code == 403
