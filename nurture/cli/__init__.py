"""The `nurture` command (CONTRACT.md: Commands), on Flask's click integration.

Each command group lives in a module of its own; this one only assembles them.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from nurture.config import SettingsError


class SettingsProblem(click.ClickException):
    """A malformed setting: one line naming it, exit status 2."""

    exit_code = 2

    def format_message(self) -> str:
        return f"invalid setting {self.message}"


def _create_app() -> Flask:
    from nurture import create_app

    try:
        return create_app()
    except SettingsError as exc:
        raise SettingsProblem(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False,
             load_dotenv=False, set_debug_flag=False)
def main() -> None:
    """Nurture: no lead that sales rejected, or that is not ready yet, is lost."""


def _register() -> None:
    from nurture.cli import accounts, database

    main.add_command(database.db)
    main.add_command(accounts.users)
    main.add_command(accounts.tokens)
    for optional in ("importing", "processes", "campaigns", "scoring", "reports", "demo",
                     "access"):
        # commands that arrive module by module; each module exposes COMMANDS
        try:
            module = __import__(f"nurture.cli.{optional}", fromlist=["COMMANDS"])
        except ModuleNotFoundError as exc:
            if exc.name != f"nurture.cli.{optional}":
                raise
            continue
        for command in module.COMMANDS:
            main.add_command(command)


_register()
