"""The HTTP entry points: thin blueprints that validate, call a service and answer."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request
from redis import Redis
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from nurture.config import Settings
from nurture.db import Database
from nurture.web.problems import problem
from workers.connection import redis_connection

MACHINE_PREFIXES = ("/api/", "/webhooks/")
"""Paths whose errors are answered as problem+json rather than as pages."""


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["nurture.settings"]
    app.extensions["nurture.db"] = Database.from_settings(settings)
    app.extensions["nurture.redis"] = (
        redis_connection(settings.redis_url) if settings.redis_url else None
    )
    app.teardown_appcontext(_close_session)
    app.register_error_handler(HTTPException, _http_error)


def settings() -> Settings:
    return current_app.extensions["nurture.settings"]


def database() -> Database:
    return current_app.extensions["nurture.db"]


def redis() -> Redis | None:
    return current_app.extensions["nurture.redis"]


def db_session() -> Session:
    """The request's session; the view commits, teardown closes (rolling back the rest)."""
    if "db_session" not in g:
        g.db_session = database().sessionmaker()
    return g.db_session


def read_body() -> bytes:
    """The raw request body; 413 past the size limit, also for a body sent without a length.

    Werkzeug stops a length-less (chunked) body at the limit without complaint; one more read
    tells a body that ends there from one that goes on, and raises 413 for the latter.
    """
    raw = request.get_data(cache=True)
    if request.content_length is None and len(raw) >= (request.max_content_length or 0) > 0:
        request.stream.read(1)  # raises RequestEntityTooLarge when more was sent
    return raw


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _http_error(exc: HTTPException) -> Any:
    if request.path.startswith(MACHINE_PREFIXES):
        detail = exc.description
        if exc.code == 413:
            limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
            detail = f"the body is larger than {limit} bytes"
        return problem(exc.code or 500, detail, headers=dict(exc.get_headers()))
    return exc
