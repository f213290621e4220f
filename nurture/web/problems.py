"""RFC 9457 problem details: every API and webhook error is one of these."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Response, json

PROBLEM_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raised inside a view to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem(
    status: int,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response; `type` is about:blank, so `title` is the HTTP status phrase."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE, headers=kept)
