"""People who sign in to Nurture, and the API tokens integrations call it with."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, BigId, email_str, id_pk, short_str, str_enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    SALES_APPROVER = "sales_approver"
    REP = "rep"


class User(Base):
    __tablename__ = "users"

    id: Mapped[id_pk]
    email: Mapped[email_str] = mapped_column(unique=True)
    name: Mapped[short_str | None]
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    team: Mapped[str | None] = mapped_column(String(100))
    """The sales (or marketing) team a person belongs to: reports group reps by it."""
    team_lead: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A rep who leads `team`: sees the team's inbox and may reassign its open handoffs."""
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[id_pk]
    name: Mapped[short_str]
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
