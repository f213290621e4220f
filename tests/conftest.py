"""Fixtures: `app` → `client` → `api`; `runner` for the CLI.

Tests run against real services. With DATABASE_URL pointing at PostgreSQL, a fresh database
is created on that server for the run and dropped after; without it, SQLite in a temporary
folder. With REDIS_URL, that Redis (database 15 by default, flushed between tests); without
it, the embedded redis-server that `nurture up` uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, text

from nurture import create_app
from nurture.accounts.services import create_token
from nurture.clock import utcnow
from nurture.db import Database
from nurture.embedded_redis import EmbeddedRedis
from nurture.migrate import upgrade_database
from nurture.models import Base, Role
from nurture.testing import scratch_database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith("postgres"):
        with scratch_database(configured) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'nurture.db'}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        # keep clear of whatever else uses database 0 of a shared Redis
        yield configured if make_url_redis_db(configured) else configured.rstrip("/") + "/15"
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def make_url_redis_db(url: str) -> bool:
    """Whether the Redis URL names a database number."""
    from urllib.parse import urlsplit

    return urlsplit(url).path.strip("/") != ""


@pytest.fixture(scope="session")
def instance_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def service_env(database_url: str, redis_url: str, instance_path: Path) -> dict[str, str]:
    """The environment that points Nurture (or a subprocess of it) at the test services."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "NURTURE_INSTANCE_PATH": str(instance_path),
        "SECRET_KEY": "test-secret-key-0123456789abcdef0123456789abcdef",
    }


@pytest.fixture(scope="session")
def app(service_env: dict[str, str]) -> Iterator[Flask]:
    upgrade_database(service_env["DATABASE_URL"])
    application = create_app({**service_env, "TESTING": True})
    yield application
    application.extensions["nurture.db"].dispose()


@pytest.fixture(scope="session")
def db(app: Flask) -> Database:
    return app.extensions["nurture.db"]


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis."""
    yield
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    database: Database = app.extensions["nurture.db"]
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    connection = app.extensions["nurture.redis"]
    if connection is not None:
        connection.flushdb()


@pytest.fixture(scope="session")
def providers(app: Flask, service_env: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An app with every email provider's webhook settings (tests/webhook_app.py)."""
    from tests.webhook_app import provider_app

    with provider_app(service_env, tmp_path_factory.mktemp("sns-certificates")) as configured:
        yield configured


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class NurtureCliRunner(FlaskCliRunner):
    """Invokes the `nurture` command (not `flask`) against the test app by default."""

    def invoke(self, cli: Any = None, args: Any = None, **kwargs: Any) -> Any:
        from nurture.cli import main

        return super().invoke(cli or main, args, **kwargs)


@pytest.fixture()
def runner(app: Flask) -> FlaskCliRunner:
    return NurtureCliRunner(app)


@pytest.fixture()
def make_token(db: Database) -> Callable[..., str]:
    """Create an API token with a role; returns the plain token."""

    def make(role: Role = Role.ADMIN, name: str = "test") -> str:
        with db.session_scope() as session:
            _, token = create_token(session, name, role, now=utcnow())
        return token

    return make


@dataclass
class Api:
    """The test client with a bearer token on every call."""

    client: FlaskClient
    token: str

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self._headers(kw.pop("headers", None)), **kw)


@pytest.fixture()
def api(client: FlaskClient, make_token: Callable[..., str]) -> Api:
    return Api(client, make_token(Role.ADMIN))


@pytest.fixture()
def count(db: Database) -> Callable[[type], int]:
    """Rows in a model's table."""

    def count_rows(model: type) -> int:
        with db.session_scope() as session:
            return session.execute(select(func.count()).select_from(model)).scalar_one()

    return count_rows


class SmtpSink:
    """aiosmtpd handler keeping every message; `refuse` makes it answer DATA with an error."""

    def __init__(self) -> None:
        import threading

        self.messages: list[Any] = []
        self.envelopes: list[tuple[Any, str, list[str]]] = []
        """(client address, MAIL FROM, RCPT TOs) of each message kept."""
        self.refuse: str | None = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        if self.refuse:
            return self.refuse
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            self.envelopes.append((session.peer, envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def by_header(self, name: str) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for message in list(self.messages):
            grouped.setdefault(str(message[name]), []).append(message)
        return grouped


@pytest.fixture()
def smtp_server() -> Iterator[tuple[SmtpSink, str]]:
    """A real SMTP server on a loopback port: (sink, SMTP_URL)."""
    from aiosmtpd.controller import Controller

    from nurture.embedded_redis import free_port

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


@pytest.fixture()
def receiver() -> Iterator[Any]:
    """A CRM's webhook endpoint on a loopback port (tests/test_handoff_delivery.py's Receiver):
    it records what it receives and checks the signature; tests make it fail or hang."""
    from tests.test_handoff_delivery import Receiver

    crm = Receiver()
    crm.thread.start()
    yield crm
    crm.release.set()
    crm.server.shutdown()
    crm.server.server_close()


@pytest.fixture()
def crm_env(monkeypatch: pytest.MonkeyPatch, service_env: dict[str, str], receiver: Any) -> None:
    """What a worker process would read: the test services and the CRM receiver."""
    from tests.test_handoff_delivery import SECRET

    for name, value in {**service_env, "CRM_WEBHOOK_URL": receiver.url,
                        "CRM_WEBHOOK_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)

