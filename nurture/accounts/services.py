"""Users and API tokens: create them, check a password or a bearer token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from nurture.errors import Conflict, InvalidInput
from nurture.fields import normalize_email, normalize_timezone
from nurture.models import ApiToken, Role, User

TOKEN_PREFIX = "nrt_"
"""Every API token starts with this, so secret scanners and people can recognise one."""

MIN_PASSWORD_LENGTH = 12
"""Shortest password a user may set."""

LAST_USED_RESOLUTION = timedelta(minutes=5)
"""A token's last use is written at most this often (no write on every request)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, or an API token or the CLI speaking for a role."""

    email: str
    role: Role
    user_id: int | None = None

    @classmethod
    def for_user(cls, user: User) -> Actor:
        return cls(email=user.email, role=user.role, user_id=user.id)


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so one SHA-256 (no salt, no stretching) is enough to store."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session,
    email: str,
    role: Role,
    *,
    password: str | None = None,
    name: str | None = None,
    timezone: str = "UTC",
    now: datetime,
) -> User:
    try:
        email = normalize_email(email)
        timezone = normalize_timezone(timezone)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.execute(select(User.id).where(User.email == email)).first():
        raise Conflict(f"a user with email {email} exists")
    user = User(
        email=email, role=role, name=name, timezone=timezone, is_active=True, created_at=now,
        password_hash=generate_password_hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, email: str) -> User:
    """The active user with this email; InvalidInput if there is none."""
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    user = session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None or not user.is_active:
        raise InvalidInput(f"no active user with email {email}")
    return user


def check_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None."""
    try:
        email = normalize_email(email)
    except ValueError:
        return None
    user = session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None or not user.is_active or not user.password_hash:
        return None
    return user if check_password_hash(user.password_hash, password) else None


def create_token(
    session: Session, name: str, role: Role, *, user_id: int | None = None, now: datetime
) -> tuple[ApiToken, str]:
    """A new token; the plain token is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 255:
        raise InvalidInput("a token needs a name of 1 to 255 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        name=name, role=role, token_hash=hash_token(token), prefix=token[:10],
        user_id=user_id, created_at=now,
    )
    session.add(record)
    session.flush()
    return record, token


def authenticate_token(session: Session, token: str, *, now: datetime) -> ApiToken | None:
    """The live token behind this bearer value, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    record = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if record is None or record.revoked_at is not None:
        return None
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        record.last_used_at = now
    return record


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None:
        raise InvalidInput(f"no token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = now
    session.flush()
    return record
