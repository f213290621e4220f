"""The OpenAPI 3.1 document of the API, built from the same models that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from nurture import MAX_REQUEST_BYTES
from nurture.leads.schemas import LeadIn, RejectionIn
from nurture.web.api import bp, docs

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "the body is not valid JSON",
        401: "no API token, or an unknown or revoked one",
        403: "the token's role may not do this",
        404: "no such lead",
        409: "conflicts with the current state",
        413: f"the body is larger than {MAX_REQUEST_BYTES} bytes",
        415: "the body is not sent as application/json",
        422: "invalid input; `errors` names each field",
    }
    return {
        str(s): {
            "description": meaning[s],
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
        for s in statuses
    }


WRITE_ERRORS = (400, 401, 403, 413, 415, 422)


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (LeadIn, "validation"),
            (RejectionIn, "validation"),
            (docs.Lead, "serialization"),
            (docs.RejectionResult, "serialization"),
            (docs.Problem, "serialization"),
        ],
        ref_template=REF,
    )
    lead_id = {"name": "lead_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Nurture API",
            "version": "1",
            "description": "Leads and rejections in from the CRM; leads, scores and handoffs out.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/leads": {
                "post": {
                    "operationId": "upsertLead",
                    "summary": "Create a lead, or update the one with the same normalised email",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("LeadIn")}},
                    },
                    "responses": {
                        "201": _json("Lead", "created"),
                        "200": _json("Lead", "updated (matched by normalised email)"),
                        **_problems(*WRITE_ERRORS),
                    },
                },
                "get": {
                    "operationId": "findLeadByEmail",
                    "summary": "The lead with this email",
                    "parameters": [
                        {"name": "email", "in": "query", "required": True,
                         "schema": {"type": "string", "format": "email"}},
                    ],
                    "responses": {
                        "200": _json("Lead", "the lead"),
                        **_problems(401, 403, 404, 422),
                    },
                },
            },
            "/leads/{lead_id}": {
                "get": {
                    "operationId": "getLead",
                    "summary": "One lead with its score, enrollments, handoffs, rejections, events",
                    "parameters": [lead_id],
                    "responses": {"200": _json("Lead", "the lead"), **_problems(401, 403, 404)},
                },
            },
            "/rejections": {
                "post": {
                    "operationId": "recordRejection",
                    "summary": "Sales gave a lead back: record why and route it to nurture",
                    "description": (
                        "A rejection with a `crm_id` seen before is a retry: the stored "
                        "rejection is answered with 200 and nothing changes."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("RejectionIn")}},
                    },
                    "responses": {
                        "201": _json("RejectionResult", "recorded"),
                        "200": _json("RejectionResult", "recorded before (same crm_id)"),
                        **_problems(*WRITE_ERRORS),
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "the OpenAPI 3.1 document"}},
                },
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `nurture tokens create`",
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Any:
    return openapi_document()
