"""Liveness and readiness (CONTRACT.md: Health)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from nurture.web import database, redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 while the process lives."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """200 only when the database and Redis both answer."""
    checks: dict[str, str] = {}
    try:
        database().ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    connection = redis()
    if connection is None:
        checks["redis"] = "error: REDIS_URL is not set"
    else:
        try:
            connection.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
