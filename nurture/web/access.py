"""Who may open a page: every page of the browser blueprints declares its roles.

`allow(*roles)` and `public` set `allowed_roles` on the view (the API's `requires` does the same),
so `nurture access` can print the whole route table with its roles. A blueprint that calls
`require_declared_roles(bp)` refuses, at request time, any view that declared nothing: a page
added without a decision is closed, never open.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import UserMixin, current_user

from nurture.models import Role, User

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"
"""`allowed_roles` of a page anyone may open (sign-in, the reset link)."""


@dataclass(frozen=True)
class SignedIn(UserMixin):
    """The signed-in user as the pages see it: plain values, no ORM object across requests.

    The session id includes a fingerprint of the password hash: a new password signs out
    every other session of that user."""

    id: int
    email: str
    name: str | None
    role: Role
    fingerprint: str

    @classmethod
    def of(cls, user: User, fingerprint: str) -> SignedIn:
        return cls(user.id, user.email, user.name, user.role, fingerprint)

    def get_id(self) -> str:
        return f"{self.id}.{self.fingerprint}"

    @property
    def display_name(self) -> str:
        return self.name or self.email


def allow(*roles: Role) -> Callable[[F], F]:
    """Signed-in users of these roles only: others get 403, anonymous users the sign-in page."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # for the route table
        return wrapped  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    view.allowed_roles = PUBLIC  # type: ignore[attr-defined]
    return view


def require_declared_roles(bp: Blueprint) -> None:
    @bp.before_request
    def _declared() -> None:
        if request.endpoint == f"{bp.name}.static":
            return  # the stylesheet and icons: anyone
        view = current_app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, "allowed_roles", None) is None:
            abort(403)


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None: the sign-in's `next` must not send
    anyone to another site (`//evil.example`, `/\\evil.example`, `https://…`, `javascript:`)."""
    if not target or len(target) > 2000:
        return None
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(role: Role) -> str:
    """Where a user of this role starts."""
    if role == Role.REP:
        if "reps.inbox" in current_app.view_functions:
            return url_for("reps.inbox")
        return url_for("auth.account")
    return url_for("admin.dashboard")
