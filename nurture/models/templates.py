"""Email templates written in the admin, stored in the database.

They override the shipped `email_templates/` folder by name (the folder stays the default):
`EmailTemplate` is the current text of each stored template, `EmailTemplateRevision` every
saved text with who saved it. A template's revision only grows, also across a reset to the
shipped text, so a process that compiled revision N knows it must compile again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base, id_pk


class EmailTemplate(Base):
    __tablename__ = "email_templates"

    id: Mapped[id_pk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime]


class EmailTemplateRevision(Base):
    """One saved text of a template (kept after the template is reset to the shipped one)."""

    __tablename__ = "email_template_revisions"
    __table_args__ = (UniqueConstraint("name", "revision", name="uq_email_template_revisions_name"),)

    id: Mapped[id_pk]
    name: Mapped[str] = mapped_column(String(100))
    revision: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(Text)
    """None for a reset: from this revision on, the shipped text is used."""
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    saved_by: Mapped[str] = mapped_column(String(320))
    saved_at: Mapped[datetime]
