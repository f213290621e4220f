"""`nurture users …` and `nurture tokens …`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from nurture.accounts import services
from nurture.clock import utcnow
from nurture.db import Database
from nurture.errors import DomainError
from nurture.models import ApiToken, Role

ROLE_CHOICE = click.Choice([r.value for r in Role])


def _db() -> Database:
    return current_app.extensions["nurture.db"]


@click.group()
def users() -> None:
    """People who sign in."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=ROLE_CHOICE)
@click.option("--password", help="Asked for on the terminal if not given.")
@click.option("--name")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
@with_appcontext
def create_user(
    email: str, role: str, password: str | None, name: str | None, timezone: str
) -> None:
    """Create a user with a role: admin, marketer, sales_approver or rep."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with _db().session_scope() as session:
            user = services.create_user(
                session, email, Role(role), password=password, name=name, timezone=timezone,
                now=utcnow(),
            )
            click.echo(f"created {user.role.value} {user.email} (id {user.id})")
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def tokens() -> None:
    """API tokens for integrations (CRMs, scripts)."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. 'salesforce'.")
@click.option("--role", default=Role.ADMIN.value, show_default=True, type=ROLE_CHOICE,
              help="What the token may do.")
@click.option("--user", "user_email", default=None,
              help="The user the token acts as, with the user's role (a rep's token sees and "
                   "answers only that rep's handoffs).")
@with_appcontext
def create_token(name: str, role: str, user_email: str | None) -> None:
    """Print a new API token once on stdout (only its hash is kept)."""
    try:
        with _db().session_scope() as session:
            user_id = None
            if user_email is not None:
                user = services.find_user(session, user_email)
                user_id, role = user.id, user.role.value
            record, token = services.create_token(session, name, Role(role), user_id=user_id,
                                                  now=utcnow())
            token_id = record.id
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)
    click.echo(f"token {token_id} ({role}) created; it is not shown again", err=True)


@tokens.command("list")
@with_appcontext
def list_tokens() -> None:
    """Tokens with their prefix, role and last use (never the token)."""
    with _db().session_scope() as session:
        for t in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
            state = "revoked" if t.revoked_at else "live"
            used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
            click.echo(f"{t.id}\t{t.prefix}…\t{t.role.value}\t{state}\tlast used {used}\t{t.name}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def revoke_token(token_id: int) -> None:
    """Revoke a token at once."""
    try:
        with _db().session_scope() as session:
            services.revoke_token(session, token_id, now=utcnow())
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {token_id} revoked")
