"""`nurture scoring …`: scoring model documents, their approval and activation, backtests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml
from flask import current_app
from flask.cli import with_appcontext

from nurture.accounts.services import Actor
from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import DomainError
from nurture.models import Role
from nurture.scoring import backtest as backtests
from nurture.scoring import lifecycle, rescoring
from nurture.scoring.document import load_text

APPROVER_ROLES = click.Choice([Role.MARKETER.value, Role.SALES_APPROVER.value])


def _db() -> Database:
    return current_app.extensions["nurture.db"]


def _fail(exc: DomainError) -> click.ClickException:
    errors = getattr(exc, "errors", None) or {}
    lines = [str(exc), *(f"  {path}: {m}" for path, ms in errors.items() for m in ms)]
    return click.ClickException("\n".join(lines))


def _enqueue(kind: str, row_id: int) -> bool:
    """Hand the work to the workers if Redis is there; False otherwise."""
    connection = current_app.extensions.get("nurture.redis")
    if connection is None:
        return False
    from workers.queues import enqueue

    enqueue(connection, kind, row_id)
    return True


@click.group()
def scoring() -> None:
    """Scoring models: import, approve, activate, export, backtest."""


@scoring.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "email", default="cli", show_default=True, help="Recorded as the author.")
@with_appcontext
def import_model(file: Path, email: str) -> None:
    """Store a scoring model document (YAML or JSON) as a new draft version."""
    try:
        data = load_text(file.read_bytes(),
                         yaml_format=file.suffix.lower() in (".yaml", ".yml"))
    except ValueError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    try:
        with _db().session_scope() as session:
            model = lifecycle.create_model(session, data, actor=email, now=utcnow())
            click.echo(f"scoring model {model.id}: version {model.version} "
                       f"{model.name!r} is a draft")
    except DomainError as exc:
        raise _fail(exc) from None


@scoring.command("export")
@click.argument("model_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@with_appcontext
def export_model(model_id: int, fmt: str) -> None:
    """Print a model's document; importing it again makes an identical version."""
    try:
        with _db().session_scope() as session:
            document = lifecycle.get_model(session, model_id).document
    except DomainError as exc:
        raise _fail(exc) from None
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
                     if fmt == "yaml" else json.dumps(document, indent=2) + "\n")


@scoring.command("list")
@with_appcontext
def list_models() -> None:
    """Every version with its status, approvals and re-score progress."""
    with _db().session_scope() as session:
        for model in lifecycle.list_models(session):
            s = lifecycle.model_summary(session, model)
            live = sorted(a["role"] for a in s["approvals"] if a["withdrawn_at"] is None)
            rescore = s["rescore"]
            progress = (f"\trescored {rescore['done']}/{rescore['total']}"
                        if rescore["total"] is not None else "")
            click.echo(f"{s['id']}\tv{s['version']}\t{s['status']}\t"
                       f"approved by {', '.join(live) or 'nobody'}\t{s['name']}{progress}")


def _review(model_id: int, email: str, role: str, action: str) -> None:
    actor = Actor(email=email, role=Role(role))
    service = lifecycle.approve_model if action == "approve" else lifecycle.withdraw_approval
    try:
        with _db().session_scope() as session:
            model = service(session, model_id, actor=actor, now=utcnow())
            click.echo(f"scoring model {model.id} (version {model.version}) is "
                       f"{model.status.value}")
    except DomainError as exc:
        raise _fail(exc) from None


@scoring.command("approve")
@click.argument("model_id", type=int)
@click.option("--as", "email", required=True, help="Who approves (recorded).")
@click.option("--role", type=APPROVER_ROLES, required=True)
@with_appcontext
def approve(model_id: int, email: str, role: str) -> None:
    """Record a marketer's or a sales approver's approval."""
    _review(model_id, email, role, "approve")


@scoring.command("withdraw")
@click.argument("model_id", type=int)
@click.option("--as", "email", required=True, help="Who withdraws (recorded).")
@click.option("--role", type=APPROVER_ROLES, required=True)
@with_appcontext
def withdraw(model_id: int, email: str, role: str) -> None:
    """Withdraw the role's approval (before activation)."""
    _review(model_id, email, role, "withdraw")


@scoring.command("activate")
@click.argument("model_id", type=int)
@click.option("--by", "email", default="cli", show_default=True)
@with_appcontext
def activate(model_id: int, email: str) -> None:
    """Make an approved model the active one; every lead is then re-scored by the workers
    (or by `nurture scoring rescore` without Redis)."""
    try:
        with _db().session_scope() as session:
            model, previous = lifecycle.activate_model(session, model_id, actor=email,
                                                       now=utcnow())
            version = model.version
            click.echo(f"scoring model {model.id} (version {version}) is active"
                       + (f"; version {previous.version} retired" if previous else ""))
    except DomainError as exc:
        raise _fail(exc) from None
    if _enqueue("rescore_leads", model_id):
        click.echo("re-scoring every lead in the background (`nurture scoring list` shows it)")
    else:
        click.echo("no Redis: run `nurture scoring rescore` to re-score every lead")


@scoring.command("retire")
@click.argument("model_id", type=int)
@click.option("--by", "email", default="cli", show_default=True)
@with_appcontext
def retire(model_id: int, email: str) -> None:
    """Take a model out of use for good."""
    try:
        with _db().session_scope() as session:
            model = lifecycle.retire_model(session, model_id, actor=email, now=utcnow())
            click.echo(f"scoring model {model.id} (version {model.version}) is retired")
    except DomainError as exc:
        raise _fail(exc) from None


@scoring.command("rescore")
@with_appcontext
def rescore() -> None:
    """Re-score every lead under the active model here and now (resumes where it stopped)."""
    with _db().session_scope() as session:
        model = lifecycle.active_model(session)
        model_id = model.id if model is not None else None
    if model_id is None:
        raise click.ClickException("no scoring model is active")
    while True:
        with _db().session_scope() as session:
            more = rescoring.rescore_batch(session, model_id, now=utcnow())
            model = lifecycle.get_model(session, model_id)
            done, total = model.rescore_done, model.rescore_total
        click.echo(f"re-scored {done}/{total} leads", err=True)
        if not more:
            break


@scoring.command("backtest")
@click.argument("model_id", type=int)
@click.option("--days", type=click.IntRange(1, backtests.MAX_DAYS), default=90,
              show_default=True)
@click.option("--background", is_flag=True, help="Let the workers run it; print its id.")
@with_appcontext
def backtest(model_id: int, days: int, background: bool) -> None:
    """Run a model over the last DAYS of history beside the active one (live scores untouched);
    prints the result as JSON."""
    try:
        with _db().session_scope() as session:
            backtest_id = backtests.request_backtest(session, model_id, days=days, actor="cli",
                                                     now=utcnow()).id
    except DomainError as exc:
        raise _fail(exc) from None
    if background and _enqueue("run_backtest", backtest_id):
        click.echo(f"backtest {backtest_id} queued")
        return
    with _db().session_scope() as session:
        done = backtests.run_backtest(session, backtest_id, now=utcnow())
        click.echo(json.dumps(backtests.backtest_document(done), indent=2))


COMMANDS = [scoring]
