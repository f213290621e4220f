"""Scoring model documents and their lifecycle: draft → approved by a marketer AND a sales
approver → active (exactly one) → retired; through the API and the `nurture scoring` CLI."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from nurture.models import Role, ScoringApproval, ScoringModel, ScoringModelStatus
from nurture.scoring.document import default_document
from tests.conftest import Api

DOCUMENT = default_document().as_data()


@pytest.fixture()
def tokens(client, make_token):
    return {
        "admin": Api(client, make_token(Role.ADMIN, "admin")),
        "marketer": Api(client, make_token(Role.MARKETER, "marketer")),
        "sales": Api(client, make_token(Role.SALES_APPROVER, "sales")),
        "rep": Api(client, make_token(Role.REP, "rep")),
    }


def create(api, document=None, **kw):
    return api.post("/api/v1/scoring/models", json=document or DOCUMENT, **kw)


def approved(tokens, document=None) -> int:
    model_id = create(tokens["marketer"], document).json["id"]
    assert tokens["marketer"].post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    assert tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 200
    return model_id


def test_the_default_model_is_valid_and_round_trips():
    again = default_document().as_data()
    assert again == DOCUMENT
    assert DOCUMENT["thresholds"] == {"total": 60, "fit": 15}
    assert {r["rule"] for r in DOCUMENT["negative"]} >= {
        "unsubscribed", "hard_bounce", "spam_complaint", "careers_page"}


def test_a_model_is_created_as_a_draft_version_from_json_or_yaml(tokens, count):
    first = create(tokens["marketer"])
    assert first.status_code == 201, first.json
    assert (first.json["version"], first.json["status"]) == (1, "draft")
    assert first.json["document"] == DOCUMENT
    second = tokens["marketer"].post(
        "/api/v1/scoring/models", data=yaml.safe_dump(DOCUMENT),
        content_type="application/yaml")
    assert second.status_code == 201
    assert second.json["version"] == 2
    listed = tokens["sales"].get("/api/v1/scoring/models").json["models"]
    assert [m["version"] for m in listed] == [2, 1]
    got = tokens["sales"].get(f"/api/v1/scoring/models/{first.json['id']}")
    assert got.json["document"] == DOCUMENT
    assert count(ScoringModel) == 2


def _broken(path_setter):
    document = copy.deepcopy(DOCUMENT)
    path_setter(document)
    return document


@pytest.mark.parametrize(("document", "path", "message"), [
    (_broken(lambda d: d["fit"][0].update(bogus=1)), "fit[0].bogus", "unknown field"),
    (_broken(lambda d: d["engagement"][0]["where"][0].update(op="like")),
     "engagement[0].where[0].op", "Input should be"),
    (_broken(lambda d: d["engagement"][2].update(points="ten")),
     "engagement[2].points", "valid number"),
    (_broken(lambda d: d["engagement"][2].update(points="10")),
     "engagement[2].points", "valid number"),
    (_broken(lambda d: d.pop("thresholds")), "thresholds", "required"),
    (_broken(lambda d: d["fit"][0]["when"][0].update(field="salary")),
     "fit[0]", "unknown field 'salary'"),
    (_broken(lambda d: d["negative"][0].update(points=5)), "negative[0].points", "less than 0"),
    (_broken(lambda d: d["engagement"][0].update(event="telepathy")),
     "engagement[0].event[0]", "must be one of"),
    (_broken(lambda d: d["engagement"][1].update(rule=d["engagement"][0]["rule"])),
     "body", "used twice"),
    (_broken(lambda d: d.update(name="\x00")), "body", "NUL character (U+0000) at name"),
    (_broken(lambda d: d["fit"][0]["when"][0].update(value="a\x00b")),
     "body", "NUL character (U+0000) at fit[0].when[0].value"),
])
def test_an_invalid_document_is_422_naming_the_path_and_nothing_is_stored(
        tokens, count, document, path, message):
    response = create(tokens["marketer"], document)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert path in response.json["errors"], response.json["errors"]
    assert any(message in m for m in response.json["errors"][path]) or message in json.dumps(
        response.json["errors"])
    assert count(ScoringModel) == 0


def test_bad_syntax_is_400_and_wrong_type_415(tokens, count):
    assert tokens["marketer"].post("/api/v1/scoring/models", data="{",
                                   content_type="application/json").status_code == 400
    assert tokens["marketer"].post("/api/v1/scoring/models", data="x",
                                   content_type="text/plain").status_code == 415
    assert tokens["marketer"].post("/api/v1/scoring/models", json=[1]).status_code == 422
    assert count(ScoringModel) == 0


def test_roles(tokens, count):
    assert create(tokens["rep"]).status_code == 403
    assert create(tokens["sales"]).status_code == 403
    model_id = create(tokens["marketer"]).json["id"]
    # an admin is neither a marketer nor a sales approver: it cannot approve for them
    assert tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/approve").status_code == 403
    assert tokens["rep"].get("/api/v1/scoring/models").status_code == 403
    assert count(ScoringApproval) == 0


def test_activation_needs_both_approvals_409_and_changes_nothing(tokens, db):
    model_id = create(tokens["marketer"]).json["id"]
    refused = tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/activate")
    assert refused.status_code == 409
    assert refused.json["errors"]["approvals"] == [
        "marketer approval required", "sales_approver approval required"]
    marketer = tokens["marketer"].post(f"/api/v1/scoring/models/{model_id}/approve")
    assert marketer.json["status"] == "draft"
    assert [a["role"] for a in marketer.json["approvals"]] == ["marketer"]
    refused = tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/activate")
    assert refused.status_code == 409
    assert refused.json["errors"]["approvals"] == ["sales_approver approval required"]
    with db.session_scope() as session:
        model = session.get(ScoringModel, model_id)
        assert (model.status, model.activated_at) == (ScoringModelStatus.DRAFT, None)
    sales = tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/approve")
    assert sales.json["status"] == "approved"
    again = tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/approve")
    assert len(again.json["approvals"]) == 2  # approving twice records it once
    active = tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/activate")
    assert active.status_code == 200
    assert active.json["status"] == "active"


def test_either_approver_withdraws_before_activation_and_both_stay_recorded(tokens):
    model_id = approved(tokens)
    withdrawn = tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/withdraw")
    assert withdrawn.status_code == 200
    assert withdrawn.json["status"] == "draft"
    approvals = {a["role"]: a for a in withdrawn.json["approvals"]}
    assert approvals["sales_approver"]["withdrawn_by"] == "token:sales"
    assert approvals["marketer"]["withdrawn_at"] is None
    assert tokens["admin"].post(
        f"/api/v1/scoring/models/{model_id}/activate").status_code == 409
    assert tokens["sales"].post(
        f"/api/v1/scoring/models/{model_id}/withdraw").status_code == 409  # nothing to withdraw
    tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/approve")
    assert tokens["marketer"].post(f"/api/v1/scoring/models/{model_id}/activate").status_code == 200
    late = tokens["marketer"].post(f"/api/v1/scoring/models/{model_id}/withdraw")
    assert late.status_code == 409  # after activation it is too late
    history = tokens["admin"].get(f"/api/v1/scoring/models/{model_id}").json["approvals"]
    assert len(history) == 3


def test_exactly_one_model_is_active_and_retired_is_final(tokens, db):
    first = approved(tokens)
    tokens["admin"].post(f"/api/v1/scoring/models/{first}/activate")
    second = approved(tokens)
    assert tokens["admin"].post(f"/api/v1/scoring/models/{second}/activate").status_code == 200
    with db.session_scope() as session:
        statuses = dict(session.query(ScoringModel.id, ScoringModel.status).all())
    assert statuses == {first: ScoringModelStatus.RETIRED, second: ScoringModelStatus.ACTIVE}
    assert tokens["admin"].post(f"/api/v1/scoring/models/{first}/activate").status_code == 409
    assert tokens["admin"].post(f"/api/v1/scoring/models/{first}/retire").status_code == 409
    retired = tokens["sales"].post(f"/api/v1/scoring/models/{second}/retire")
    assert retired.json["status"] == "retired"
    assert tokens["admin"].get("/api/v1/scoring/models/999").status_code == 404


def test_cli_imports_approves_activates_and_exports(runner, tmp_path, db):
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    imported = runner.invoke(args=["scoring", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "version 1" in imported.output
    refused = runner.invoke(args=["scoring", "activate", "1"])
    assert refused.exit_code != 0
    assert "approval" in refused.output
    for role in ("marketer", "sales_approver"):
        result = runner.invoke(args=["scoring", "approve", "1", "--as", "someone@example.com",
                                     "--role", role])
        assert result.exit_code == 0, result.output
    activated = runner.invoke(args=["scoring", "activate", "1"])
    assert activated.exit_code == 0, activated.output
    exported = runner.invoke(args=["scoring", "export", "1"])
    assert yaml.safe_load(exported.output) == DOCUMENT
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**DOCUMENT, "thresholds": {"total": "many"}}))
    refused = runner.invoke(args=["scoring", "import", str(bad)])
    assert refused.exit_code != 0
    assert "thresholds.total" in refused.output
    with db.session_scope() as session:
        assert session.query(ScoringModel).count() == 1


def test_answers_match_the_openapi_document(tokens, client):
    from jsonschema import Draft202012Validator

    document = client.get("/api/v1/openapi.json").json

    def check(path, method, response):
        responses = document["paths"][path][method]["responses"]
        assert str(response.status_code) in responses, (path, response.status_code)
        schema = responses[str(response.status_code)]["content"][response.mimetype]["schema"]
        validator = Draft202012Validator({**schema, "components": document["components"]})
        assert not [e.message for e in validator.iter_errors(response.json)]

    created = create(tokens["marketer"])
    model_id = created.json["id"]
    check("/scoring/models", "post", created)
    check("/scoring/models", "post", create(tokens["marketer"], {"name": "x"}))
    check("/scoring/models", "get", tokens["admin"].get("/api/v1/scoring/models"))
    check("/scoring/models/{model_id}", "get",
          tokens["admin"].get(f"/api/v1/scoring/models/{model_id}"))
    check("/scoring/models/{model_id}/activate", "post",
          tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/activate"))
    for role in ("marketer", "sales"):
        check("/scoring/models/{model_id}/approve", "post",
              tokens[role].post(f"/api/v1/scoring/models/{model_id}/approve"))
    check("/scoring/models/{model_id}/activate", "post",
          tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/activate"))
    check("/scoring/models/{model_id}/withdraw", "post",
          tokens["sales"].post(f"/api/v1/scoring/models/{model_id}/withdraw"))
    queued = tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/backtests", json={})
    check("/scoring/models/{model_id}/backtests", "post", queued)
    check("/scoring/backtests/{backtest_id}", "get",
          tokens["admin"].get(f"/api/v1/scoring/backtests/{queued.json['id']}"))
    check("/scoring/models/{model_id}/retire", "post",
          tokens["admin"].post(f"/api/v1/scoring/models/{model_id}/retire"))
    lead = tokens["admin"].post("/api/v1/leads", json={"email": "vp@example.com",
                                                       "title": "VP Sales"})
    assert lead.json["score"]["model_version"] is None  # retired: no model is active


def test_cli_lists_models_and_re_scores_in_the_foreground(runner, tmp_path, db):
    from nurture.clock import utcnow
    from nurture.models import Lead, LeadScore, LifecycleStage

    with db.session_scope() as session:
        for i in range(3):
            session.add(Lead(email=f"l{i}@example.com", title="VP Sales", attributes={},
                             lifecycle_stage=LifecycleStage.NURTURING, created_at=utcnow(),
                             updated_at=utcnow()))
    path = tmp_path / "model.json"
    path.write_text(json.dumps(DOCUMENT))
    assert runner.invoke(args=["scoring", "import", str(path)]).exit_code == 0
    assert runner.invoke(args=["scoring", "rescore"]).exit_code != 0  # nothing active
    for role in ("marketer", "sales_approver"):
        runner.invoke(args=["scoring", "approve", "1", "--as", "a@example.com", "--role", role])
    listed = runner.invoke(args=["scoring", "list"])
    assert "approved by marketer, sales_approver" in listed.output
    assert runner.invoke(args=["scoring", "withdraw", "1", "--as", "a@example.com",
                               "--role", "marketer"]).exit_code == 0
    assert "approved by sales_approver" in runner.invoke(args=["scoring", "list"]).output
    runner.invoke(args=["scoring", "approve", "1", "--as", "b@example.com", "--role", "marketer"])
    assert runner.invoke(args=["scoring", "activate", "1"]).exit_code == 0
    rescored = runner.invoke(args=["scoring", "rescore"])
    assert rescored.exit_code == 0, rescored.output
    assert "re-scored 3/3 leads" in rescored.output
    with db.session_scope() as session:
        assert {row.fit for row in session.query(LeadScore)} == {15}
    assert "rescored 3/3" in runner.invoke(args=["scoring", "list"]).output
    assert runner.invoke(args=["scoring", "retire", "1"]).exit_code == 0
    assert runner.invoke(args=["scoring", "retire", "1"]).exit_code != 0
