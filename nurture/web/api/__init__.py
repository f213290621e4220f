"""The JSON API under /api/v1 (CONTRACT.md): bearer tokens, problem+json errors."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, request
from pydantic import BaseModel, ValidationError

from nurture.accounts.services import Actor, authenticate_token
from nurture.clock import utcnow
from nurture.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from nurture.fields import field_errors
from nurture.models import ApiToken, Role, User
from nurture.web import db_session, read_body
from nurture.web.problems import ProblemError, problem

bp = Blueprint("api", __name__, url_prefix="/api/v1")

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

JSON_TYPES = ("application/json",)


def requires(*roles: Role) -> Callable[[F], F]:
    """Allow the view to tokens of these roles only (401 without a live token, 403 other role)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            g.api_token = _authenticate()
            if g.api_token.role not in roles:
                raise ProblemError(
                    403, f"a {g.api_token.role.value} token may not do this; "
                    f"allowed: {', '.join(r.value for r in roles)}"
                )
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # for the route table
        return wrapped  # type: ignore[return-value]

    return decorate


def _authenticate() -> ApiToken:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ProblemError(
            401, "send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="nurture"'},
        )
    record = authenticate_token(db_session(), value.strip(), now=utcnow())
    if record is None:
        raise ProblemError(
            401, "the API token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="nurture", error="invalid_token"'},
        )
    return record


def current_actor() -> Actor:
    """Who the request acts as: the token's user if it has one, else the token by name."""
    token: ApiToken = g.api_token
    if token.user_id is not None:
        user = db_session().get(User, token.user_id)
        if user is not None:
            return Actor(email=user.email, role=token.role, user_id=user.id)
    return Actor(email=f"token:{token.name}", role=token.role)


def json_body(model: type[M]) -> M:
    """The request body validated whole against `model` (415, 413, 400 or 422 otherwise)."""
    if request.mimetype not in JSON_TYPES and not request.mimetype.endswith("+json"):
        raise ProblemError(
            415, f"send JSON with 'Content-Type: application/json', not {request.mimetype or 'none'}"
        )
    raw = read_body()
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ProblemError(400, "the body is not valid JSON") from None
        raise ProblemError(422, "the body is invalid", errors=field_errors(exc)) from None


@bp.errorhandler(ProblemError)
def _problem(exc: ProblemError) -> Any:
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError) -> Any:
    if isinstance(exc, NotFound):
        return problem(404, str(exc))
    if isinstance(exc, Conflict):
        return problem(409, str(exc), errors=exc.errors or None)
    if isinstance(exc, Forbidden):
        return problem(403, str(exc))
    if isinstance(exc, InvalidInput):
        return problem(422, str(exc), errors=exc.errors)
    return problem(400, str(exc))


from nurture.web.api import (  # noqa: E402,F401  (views register on bp)
    collateral,
    events,
    handoffs,
    leads,
    openapi,
    outcomes,
    reports,
    scoring,
    sequences,
    slas,
)
