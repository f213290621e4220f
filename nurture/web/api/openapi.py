"""The OpenAPI 3.1 document of the API, built from the same models that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from campaigns.documents import SequenceDocument
from campaigns.schemas import CollateralIn, CollateralVersionIn, ReviewIn
from campaigns.uploads import ALLOWED_TYPES, MAX_UPLOAD_BYTES
from nurture import MAX_REQUEST_BYTES
from nurture.engagement.schemas import MAX_EVENTS, EventsIn
from nurture.handoffs.schemas import MAX_OUTCOMES, HandoffRejectIn, OutcomesIn
from nurture.handoffs.sla_document import SlaDocument
from nurture.leads.schemas import LeadIn, RejectionIn
from nurture.scoring.document import ScoringDocument
from nurture.web.api import bp, docs
from nurture.web.api.scoring import BacktestIn
from nurture.web.api.sequences import MigrateIn

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
        404: "no such lead, sequence or collateral",
        409: "conflicts with the current state; `errors` names what conflicts",
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
            (SequenceDocument, "validation"),
            (docs.ImportedSequence, "serialization"),
            (docs.SequenceList, "serialization"),
            (docs.MigrationResult, "serialization"),
            (docs.NurtureResult, "serialization"),
            (MigrateIn, "validation"),
            (CollateralIn, "validation"),
            (CollateralVersionIn, "validation"),
            (ReviewIn, "validation"),
            (docs.CollateralVersion, "serialization"),
            (docs.CollateralDetail, "serialization"),
            (EventsIn, "validation"),
            (docs.EventsAccepted, "serialization"),
            (docs.SnsSubscriptionList, "serialization"),
            (HandoffRejectIn, "validation"),
            (ScoringDocument, "validation"),
            (BacktestIn, "validation"),
            (docs.ScoringModelDetail, "serialization"),
            (docs.ScoringModelList, "serialization"),
            (docs.BacktestRun, "serialization"),
            (docs.HandoffList, "serialization"),
            (docs.HandoffAnswer, "serialization"),
            (docs.HandoffDetail, "serialization"),
            (docs.HandoffRejectionResult, "serialization"),
            (OutcomesIn, "validation"),
            (docs.OutcomesRecorded, "serialization"),
            (SlaDocument, "validation"),
            (docs.SlaDetail, "serialization"),
            (docs.SlaList, "serialization"),
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
            "/leads/{lead_id}/nurture": {
                "post": {
                    "operationId": "nurtureNotReadyLead",
                    "summary": "Put a lead that is not ready for sales into nurture",
                    "description": (
                        "Routed to the first active sequence whose entry takes not-ready "
                        "leads (`entry.not_ready: true`); 409 while sales holds the lead."
                    ),
                    "parameters": [lead_id],
                    "responses": {"200": _json("NurtureResult", "in nurture"),
                                  **_problems(401, 403, 404, 409)},
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
            "/events": {
                "post": {
                    "operationId": "recordEvents",
                    "summary": "Engagement from the website and other systems, idempotent by `id`",
                    "description": (
                        f"At most {MAX_EVENTS} events, stored in one transaction (any invalid "
                        "event refuses the whole request). An `id` stored before is counted in "
                        "`duplicates` and changes nothing. An `email` that matches no lead is "
                        "stored unmatched; a `lead_id` that does not exist is a 422."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("EventsIn")}},
                    },
                    "responses": {
                        "202": _json("EventsAccepted", "stored (or stored before)"),
                        **_problems(*WRITE_ERRORS),
                    },
                },
            },
            "/sns-subscriptions": {
                "get": {
                    "operationId": "listSnsSubscriptions",
                    "summary": "Amazon SNS (un)subscription messages received, newest first",
                    "description": (
                        "A SubscriptionConfirmation is confirmed by calling its SubscribeURL "
                        "when it arrives; one that could not be is `pending`, with the error "
                        "and the URL to open by hand. Admins only."
                    ),
                    "responses": {"200": _json("SnsSubscriptionList", "the subscriptions"),
                                  **_problems(401, 403)},
                },
            },
            **_sequence_paths(),
            **_collateral_paths(),
            **_handoff_paths(),
            **_scoring_paths(),
            **_outcome_paths(),
            **_sla_paths(),
            **_report_paths(),
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


def _int_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def _sequence_paths() -> dict[str, Any]:
    sequence_id = _int_param("sequence_id")
    document_body = {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("SequenceDocument")},
            "application/yaml": {"schema": _ref("SequenceDocument")},
        },
    }
    summary = _json("SequenceSummary", "the sequence")
    return {
        "/sequences": {
            "post": {
                "operationId": "importSequence",
                "summary": "Import a sequence document (JSON or YAML), validated whole",
                "description": (
                    "A new key makes a new sequence; a changed document for a known key makes a "
                    "new version (leads already enrolled stay on theirs); an unchanged document "
                    "changes nothing (200). Errors name the path, e.g. "
                    "`stages[1].steps[2].wait.duration`."
                ),
                "requestBody": document_body,
                "responses": {
                    "201": _json("ImportedSequence", "a new sequence or version"),
                    "200": _json("ImportedSequence", "unchanged"),
                    **_problems(*WRITE_ERRORS),
                },
            },
            "get": {
                "operationId": "listSequences",
                "summary": "Every sequence with its status and versions",
                "responses": {"200": _json("SequenceList", "the sequences"),
                              **_problems(401, 403)},
            },
        },
        "/sequences/{sequence_id}": {
            "get": {
                "operationId": "exportSequence",
                "summary": "The sequence document, round-trippable (newest version by default)",
                "parameters": [
                    sequence_id,
                    {"name": "version", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1}},
                    {"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["json", "yaml"]}},
                ],
                "responses": {
                    "200": {
                        "description": "the document",
                        "content": {
                            "application/json": {"schema": _ref("SequenceDocument")},
                            "application/yaml": {"schema": _ref("SequenceDocument")},
                        },
                    },
                    **_problems(401, 403, 404),
                },
            },
        },
        "/sequences/{sequence_id}/activate": {
            "post": {
                "operationId": "activateSequence",
                "summary": "Make the newest version live",
                "description": "409 names each step that features unapproved or expired collateral.",
                "parameters": [sequence_id],
                "responses": {"200": summary, **_problems(401, 403, 404, 409)},
            },
        },
        "/sequences/{sequence_id}/migrate": {
            "post": {
                "operationId": "migrateEnrollments",
                "summary": "Move enrolled leads from an older version onto the live one",
                "description": (
                    "An enrollment moves when its current step exists in the live version; "
                    "the others stay on their version and are listed with why."
                ),
                "parameters": [sequence_id],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("MigrateIn")}}},
                "responses": {"200": _json("MigrationResult", "what moved and what stayed"),
                              **_problems(*WRITE_ERRORS, 404, 409)},
            },
        },
        "/sequences/{sequence_id}/pause": {
            "post": {
                "operationId": "pauseSequence",
                "summary": "Stop new enrollments and sending until activated again",
                "parameters": [sequence_id],
                "responses": {"200": summary, **_problems(401, 403, 404, 409)},
            },
        },
    }


def _collateral_paths() -> dict[str, Any]:
    key = {"name": "key", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"}}
    version_id = _int_param("version_id")
    version = _json("CollateralVersion", "the version")

    def body(name: str, required: bool = True) -> dict[str, Any]:
        return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}

    def with_file(name: str, form: dict[str, Any]) -> dict[str, Any]:
        """JSON with a `url`, or a multipart form with the `file` itself."""
        return {"required": True, "content": {
            "application/json": {"schema": _ref(name)},
            "multipart/form-data": {"schema": form},
        }}

    form_fields: dict[str, Any] = {
        "title": {"type": "string", "minLength": 1, "maxLength": 255},
        "funnel_stage": {"type": "string", "enum": ["awareness", "consideration", "decision"]},
        "personas": {"type": "string", "description": "comma-separated"},
        "industries": {"type": "string", "description": "comma-separated"},
        "expires_on": {"type": "string", "format": "date"},
        "file": {"type": "string", "format": "binary", "description": (
            f"at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; one of "
            f"{', '.join(sorted(ALLOWED_TYPES))}; the content must match the extension")},
    }
    version_form = {"type": "object", "required": ["title", "file"], "properties": form_fields}
    create_form = {"type": "object", "required": ["key", "title", "file"], "properties": {
        "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"}, **form_fields}}

    paths: dict[str, Any] = {
        "/collateral": {
            "post": {
                "operationId": "createCollateral",
                "summary": "A new asset (a link, or an uploaded file); its first version is a draft",
                "requestBody": with_file("CollateralIn", create_form),
                "responses": {"201": version, **_problems(*WRITE_ERRORS, 409)},
            },
        },
        "/collateral/{key}": {
            "get": {
                "operationId": "getCollateral",
                "summary": "An asset with every version and its approval history",
                "parameters": [key],
                "responses": {"200": _json("CollateralDetail", "the asset"),
                              **_problems(401, 403, 404)},
            },
        },
        "/collateral/{key}/versions": {
            "post": {
                "operationId": "addCollateralVersion",
                "summary": "A new draft version of an asset (a link, or an uploaded file)",
                "parameters": [key],
                "requestBody": with_file("CollateralVersionIn", version_form),
                "responses": {"201": version, **_problems(*WRITE_ERRORS, 404)},
            },
        },
    }
    for action, who in (
        ("submit", "a marketer submits a draft for sales approval"),
        ("approve", "a sales approver approves a submitted version"),
        ("request-changes", "a sales approver asks for changes (comment required)"),
        ("retire", "take a version out of use; steps featuring it pause"),
    ):
        paths[f"/collateral/versions/{{version_id}}/{action}"] = {
            "post": {
                "operationId": f"{action.replace('-', '_')}Collateral",
                "summary": who,
                "parameters": [version_id],
                "requestBody": body("ReviewIn", required=False),
                "responses": {"200": version, **_problems(*WRITE_ERRORS, 404, 409)},
            },
        }
    return paths


def _handoff_paths() -> dict[str, Any]:
    handoff_id = _int_param("handoff_id")
    return {
        "/handoffs": {
            "get": {
                "operationId": "listHandoffs",
                "summary": "Leads recycled to sales, newest first (a rep's token: its own only)",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["open", "accepted", "rejected"]}},
                    {"name": "rep_email", "in": "query", "required": False,
                     "schema": {"type": "string", "format": "email"}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                ],
                "responses": {"200": _json("HandoffList", "the handoffs"),
                              **_problems(401, 403, 422)},
            },
        },
        "/handoffs/{handoff_id}": {
            "get": {
                "operationId": "getHandoff",
                "summary": "One handoff with every step and each notification's delivery tries",
                "parameters": [handoff_id],
                "responses": {"200": _json("HandoffDetail", "the handoff and its history"),
                              **_problems(401, 403, 404)},
            },
        },
        "/handoffs/{handoff_id}/accept": {
            "post": {
                "operationId": "acceptHandoff",
                "summary": "The rep takes the lead: it leaves nurture for good",
                "description": "403 for another rep's handoff; 409 once accepted or rejected.",
                "parameters": [handoff_id],
                "responses": {"200": _json("HandoffAnswer", "accepted"),
                              **_problems(401, 403, 404, 409)},
            },
        },
        "/handoffs/{handoff_id}/reject": {
            "post": {
                "operationId": "rejectHandoff",
                "summary": "The rep gives the lead back: it returns to nurture, routed by reason",
                "description": "403 for another rep's handoff; 409 once accepted or rejected.",
                "parameters": [handoff_id],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("HandoffRejectIn")}}},
                "responses": {"200": _json("HandoffRejectionResult", "back in nurture"),
                              **_problems(*WRITE_ERRORS, 404, 409)},
            },
        },
    }


def _scoring_paths() -> dict[str, Any]:
    model_id = _int_param("model_id")
    summary = _json("ScoringModelSummary", "the model")
    paths: dict[str, Any] = {
        "/scoring/models": {
            "post": {
                "operationId": "createScoringModel",
                "summary": "Store a scoring model document (JSON or YAML) as a new draft version",
                "description": "Validated whole; errors name the path, e.g. `engagement[2].points`.",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ScoringDocument")},
                    "application/yaml": {"schema": _ref("ScoringDocument")}}},
                "responses": {"201": _json("ScoringModelDetail", "a new draft version"),
                              **_problems(*WRITE_ERRORS)},
            },
            "get": {
                "operationId": "listScoringModels",
                "summary": "Every version, newest first, with its approvals",
                "responses": {"200": _json("ScoringModelList", "the models"),
                              **_problems(401, 403)},
            },
        },
        "/scoring/models/{model_id}": {
            "get": {
                "operationId": "getScoringModel",
                "summary": "A version with its document, approvals and re-score progress",
                "parameters": [model_id],
                "responses": {"200": _json("ScoringModelDetail", "the model"),
                              **_problems(401, 403, 404)},
            },
        },
        "/scoring/models/{model_id}/backtests": {
            "post": {
                "operationId": "backtestScoringModel",
                "summary": "Run the model over stored history beside the active one (background)",
                "parameters": [model_id],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("BacktestIn")}}},
                "responses": {"202": _json("BacktestRun", "queued"),
                              **_problems(*WRITE_ERRORS, 404)},
            },
        },
        "/scoring/backtests/{backtest_id}": {
            "get": {
                "operationId": "getBacktest",
                "summary": "A backtest and, once done, what it found",
                "parameters": [_int_param("backtest_id")],
                "responses": {"200": _json("BacktestRun", "the backtest"),
                              **_problems(401, 403, 404)},
            },
        },
    }
    for action, what in (
        ("approve", "a marketer or a sales approver approves (both are needed)"),
        ("withdraw", "withdraw the caller's role's approval, before activation"),
        ("activate", "make the approved model the active one (409 without both approvals); "
                     "every lead is re-scored in the background"),
        ("retire", "take the model out of use for good"),
    ):
        paths[f"/scoring/models/{{model_id}}/{action}"] = {
            "post": {
                "operationId": f"{action}ScoringModel",
                "summary": what,
                "parameters": [model_id],
                "responses": {"200": summary, **_problems(401, 403, 404, 409)},
            },
        }
    return paths


def _outcome_paths() -> dict[str, Any]:
    return {
        "/outcomes": {
            "post": {
                "operationId": "reportOutcomes",
                "summary": "What happened to leads in the CRM: opportunity created, won, lost",
                "description": (
                    f"At most {MAX_OUTCOMES} outcomes, validated whole (any invalid item, e.g. "
                    "`won` without an amount or one dated more than a day ahead, refuses the "
                    "request with 422 naming it), then "
                    "answered per item in order: `recorded`, `duplicate` (the CRM's outcome "
                    "`id` was recorded before, or repeats in this request: nothing changes), "
                    "`unknown_lead` (no lead with that crm_id or email) or `ambiguous_lead`; "
                    "the rest of the batch is recorded. Lifecycle: accepted → opportunity → "
                    "customer; `lost` returns the lead to nurture with a rejection "
                    "(price → no_budget, competitor → chose_competitor, no_decision → "
                    "no_need, timing → bad_timing, other → other), routed like a rejection."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("OutcomesIn")}},
                },
                "responses": {
                    "200": _json("OutcomesRecorded", "committed; one answer per item"),
                    **_problems(*WRITE_ERRORS),
                },
            },
        },
    }


def _sla_paths() -> dict[str, Any]:
    sla_id = _int_param("sla_id")
    paths: dict[str, Any] = {
        "/slas": {
            "post": {
                "operationId": "createSla",
                "summary": "Store an SLA document (JSON or YAML) as a new draft version",
                "description": "Validated whole; errors name the path, e.g. "
                               "`escalation[1].within`.",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("SlaDocument")},
                    "application/yaml": {"schema": _ref("SlaDocument")}}},
                "responses": {"201": _json("SlaDetail", "a new draft version"),
                              **_problems(*WRITE_ERRORS)},
            },
            "get": {
                "operationId": "listSlas",
                "summary": "Every version, newest first, with its approvals, and the active one",
                "responses": {"200": _json("SlaList", "the versions"), **_problems(401, 403)},
            },
        },
        "/slas/{sla_id}": {
            "get": {
                "operationId": "getSla",
                "summary": "A version with its document and approvals",
                "parameters": [sla_id],
                "responses": {"200": _json("SlaDetail", "the version"),
                              **_problems(401, 403, 404)},
            },
        },
    }
    for action, what in (
        ("approve", "a marketer or a sales approver approves (both are needed)"),
        ("withdraw", "withdraw the caller's role's approval, before activation"),
        ("activate", "put the approved version in force for new handoffs, retiring the one "
                     "before (409 without both approvals)"),
        ("retire", "take the version out of use for good (the settings' default applies "
                   "when none is active)"),
    ):
        paths[f"/slas/{{sla_id}}/{action}"] = {
            "post": {
                "operationId": f"{action}Sla",
                "summary": what,
                "parameters": [sla_id],
                "responses": {"200": _json("SlaSummary", "the version"),
                              **_problems(401, 403, 404, 409)},
            },
        }
    return paths


def _report_paths() -> dict[str, Any]:
    from nurture.reports.figures import REPORTS
    from nurture.reports.params import GROUPINGS

    answer = {
        "type": "object",
        "required": ["report", "from", "to", "group_by", "columns", "rows"],
        "properties": {
            "report": {"type": "string"},
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "group_by": {"type": ["string", "null"]},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "integer", "null"]}}},
        },
    }
    date = {"type": "string", "format": "date"}
    return {
        "/reports": {
            "get": {
                "operationId": "listReports",
                "summary": "The reports, each with the groupings it accepts",
                "responses": {"200": {"description": "the reports", "content": {
                    "application/json": {"schema": {"type": "object"}}}},
                    **_problems(401, 403)},
            },
        },
        "/reports/{name}": {
            "get": {
                "operationId": "getReport",
                "summary": "One report for a period (both ends included, UTC days; default: the "
                           "90 days up to today; at most five years), optionally grouped; JSON, "
                           "or the same columns and rows as CSV with format=csv",
                "parameters": [
                    {"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": list(REPORTS)}},
                    {"name": "from", "in": "query", "required": False, "schema": date},
                    {"name": "to", "in": "query", "required": False, "schema": date},
                    {"name": "group_by", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": list(GROUPINGS)}},
                    {"name": "format", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["json", "csv"]}},
                ],
                "responses": {"200": {"description": "the report", "content": {
                    "application/json": {"schema": answer},
                    "text/csv": {"schema": {"type": "string"}}}},
                    **_problems(401, 403, 404, 422)},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Any:
    return openapi_document()
