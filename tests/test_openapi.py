"""The OpenAPI document is valid 3.1, covers every API route, and describes real answers."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.test_api_rejections import REJECTION


@pytest.fixture()
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_api_route_is_documented_and_every_documented_route_exists(app, document):
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {
        (path, method) for path, ops in document["paths"].items() for method in ops
    }
    assert served == documented


def _validator(document, path, method, status, media="application/json"):
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}"
    schema = responses[str(status)]["content"][media]["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


def _check(document, path, method, response):
    media = response.mimetype
    validator = _validator(document, path, method, response.status_code, media)
    errors = sorted(validator.iter_errors(response.json), key=str)
    assert not errors, [e.message for e in errors]


def test_answers_match_their_documented_schemas(api, document):
    created = api.post("/api/v1/leads", json={"email": "a@example.com", "attributes": {"k": [1]}})
    _check(document, "/leads", "post", created)
    updated = api.post("/api/v1/leads", json={"email": "a@example.com", "country": "de"})
    _check(document, "/leads", "post", updated)
    rejected = api.post("/api/v1/rejections", json=REJECTION)
    _check(document, "/rejections", "post", rejected)
    retried = api.post("/api/v1/rejections", json=REJECTION)
    _check(document, "/rejections", "post", retried)
    lead_id = rejected.json["lead"]["id"]
    _check(document, "/leads/{lead_id}", "get", api.get(f"/api/v1/leads/{lead_id}"))
    _check(document, "/leads", "get", api.get("/api/v1/leads?email=a@example.com"))


def test_errors_match_the_documented_problem_schema(api, client, document):
    cases = [
        ("/leads", "post", api.post("/api/v1/leads", json={"email": "x"})),
        ("/leads", "post", api.post("/api/v1/leads", data="x", content_type="text/plain")),
        ("/leads", "post", api.post("/api/v1/leads", data="{", content_type="application/json")),
        ("/leads", "post", client.post("/api/v1/leads", json={"email": "a@example.com"})),
        ("/leads/{lead_id}", "get", api.get("/api/v1/leads/12345")),
        ("/leads", "get", api.get("/api/v1/leads")),
        ("/rejections", "post", api.post("/api/v1/rejections", json={})),
    ]
    for path, method, response in cases:
        assert response.mimetype == "application/problem+json"
        _check(document, path, method, response)


def test_documented_request_schemas_refuse_what_the_api_refuses(document):
    lead_schema = Draft202012Validator(
        {"$ref": "#/components/schemas/LeadIn", "components": document["components"]}
    )
    assert lead_schema.is_valid({"email": "a@example.com", "company_size": 3})
    assert not lead_schema.is_valid({"email": "a@example.com", "unknown": 1})
    assert not lead_schema.is_valid({"company": "no email"})
    reasons = document["components"]["schemas"]["RejectionIn"]["properties"]["reason"]["enum"]
    assert reasons == ["no_budget", "no_authority", "no_need", "bad_timing", "not_icp",
                       "unresponsive", "chose_competitor", "other"]
