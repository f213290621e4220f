"""Password resets: a signed link that expires, and works once.

The link carries the user's id, when it was issued and a fingerprint of the user's current
password hash. Setting a password changes the hash (its salt is new each time), so a link that
was used, or one issued before a later reset, no longer matches: no table of used links needed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from nurture.accounts.services import MIN_PASSWORD_LENGTH
from nurture.errors import InvalidInput
from nurture.models import User

RESET_VALID_FOR = timedelta(hours=1)
"""How long an emailed reset link works."""

MAX_PASSWORD_LENGTH = 256
"""Longest password accepted (hashing a megabyte on every sign-in is a denial of service)."""

_SALT = "nurture.password-reset"
"""Keeps these signatures apart from every other use of SECRET_KEY."""


def password_fingerprint(user: User) -> str:
    """Changes whenever the user's password does (also used to end older sessions)."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def reset_token(user: User, secret_key: str, *, now: datetime) -> str:
    """The signed token of a reset link for `user`, issued at `now`."""
    serializer = URLSafeSerializer(secret_key, salt=_SALT)
    return str(serializer.dumps([user.id, password_fingerprint(user), int(now.timestamp())]))


def user_for_reset(session: Session, token: str, secret_key: str, *, now: datetime) -> User:
    """The active user a reset token was issued to; InvalidInput if it is forged, expired,
    already used or its user is gone."""
    serializer = URLSafeSerializer(secret_key, salt=_SALT)
    try:
        user_id, fingerprint, issued = serializer.loads(token)
    except (BadSignature, TypeError, ValueError):
        raise InvalidInput("this reset link is not valid") from None
    age = now.timestamp() - float(issued)
    if not 0 <= age <= RESET_VALID_FOR.total_seconds() + 60:  # a minute of clock skew
        raise InvalidInput("this reset link has expired")
    user = session.get(User, int(user_id))
    if user is None or not user.is_active or password_fingerprint(user) != fingerprint:
        raise InvalidInput("this reset link was used already or is no longer valid")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have {MIN_PASSWORD_LENGTH} to "
                           f"{MAX_PASSWORD_LENGTH} characters")
    user.password_hash = generate_password_hash(password)
    session.flush()
