"""Tooling for the test suite and the benchmarks: a throwaway PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from nurture.config import load_settings


@contextmanager
def scratch_database(server_url: str, prefix: str = "nurture_test") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `server_url`; dropped afterwards.

    Yields its SQLAlchemy URL. Any database name in `server_url` is ignored: only the server
    and the credentials are used, through the server's `postgres` database.
    """
    import psycopg

    url = make_url(load_settings({"DATABASE_URL": server_url}).database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
