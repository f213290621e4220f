"""Alembic migration scripts (plain Alembic; run them with `nurture db upgrade`)."""
