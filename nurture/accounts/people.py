"""Operators' changes to people and tokens: a user's role, team and time zone, deactivation
(which also revokes the user's API tokens), and the token list (never the tokens)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.fields import normalize_timezone
from nurture.models import ApiToken, Role, User

MAX_TEAM = 100
"""Longest team name (the column's size)."""

MAX_NAME = 255


def list_users(session: Session) -> list[User]:
    """Everyone who can (or could) sign in: active ones first, then by role and address."""
    return list(session.execute(
        select(User).order_by(User.is_active.desc(), User.role, User.email)).scalars())


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def teams(session: Session) -> list[str]:
    """The team names in use, to offer when assigning one."""
    return [t for t in session.execute(
        select(User.team).where(User.team.is_not(None)).distinct().order_by(User.team)
    ).scalars() if t]


def update_user(session: Session, user_id: int, *, name: str | None, role: Role,
                team: str | None, timezone: str, acting_user_id: int | None = None) -> User:
    """Set a user's name, role, team and time zone. InvalidInput names the field at fault;
    Conflict when an operator would take the admin role from themselves."""
    user = get_user(session, user_id)
    errors: dict[str, list[str]] = {}
    try:
        timezone = normalize_timezone(timezone)
    except ValueError as exc:
        errors["timezone"] = [str(exc)]
    team = " ".join((team or "").split()) or None
    if team is not None and len(team) > MAX_TEAM:
        errors["team"] = [f"A team name has at most {MAX_TEAM} characters."]
    name = " ".join((name or "").split()) or None
    if name is not None and len(name) > MAX_NAME:
        errors["name"] = [f"A name has at most {MAX_NAME} characters."]
    if errors:
        raise InvalidInput("the user was not changed", errors)
    if user.id == acting_user_id and user.role is Role.ADMIN and role is not Role.ADMIN:
        raise Conflict("you cannot take the admin role from yourself; ask another admin",
                       {"role": ["You cannot take the admin role from yourself."]})
    user.name, user.role, user.team, user.timezone = name, role, team, timezone
    session.flush()
    return user


def set_active(session: Session, user_id: int, active: bool, *, acting_user_id: int | None,
               now: datetime) -> User:
    """Deactivate (signed out at the next request, API tokens revoked) or reactivate a user.
    Conflict for deactivating oneself or the last active admin."""
    user = get_user(session, user_id)
    if not active and user.is_active:
        if user.id == acting_user_id:
            raise Conflict("you cannot deactivate yourself; ask another admin")
        if user.role is Role.ADMIN and _active_admins(session) <= 1:
            raise Conflict("this is the last active admin; make another one first")
        session.execute(update(ApiToken)
                        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=now).execution_options(synchronize_session=False))
    user.is_active = active
    session.flush()
    return user


def list_tokens(session: Session) -> list[tuple[ApiToken, str | None]]:
    """Every token with the address of the user it acts for (None: it acts by its role):
    live ones first, newest first."""
    return [(token, email) for token, email in session.execute(
        select(ApiToken, User.email).join(User, User.id == ApiToken.user_id, isouter=True)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc()))]


def _active_admins(session: Session) -> int:
    return session.execute(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN, User.is_active.is_(True))).scalar_one()

