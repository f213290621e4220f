"""`nurture access`: every route of the app and who may use it, on one screen."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

PUBLIC_PREFIXES = {
    "/webhooks/": "provider signature",
    "/t/": "signed link",
    "/u/": "signed link",
    "/files/": "anyone (live, approved collateral)",
    "/healthz": "anyone",
    "/readyz": "anyone",
    "/api/v1/openapi.json": "anyone",
    "/assets/": "anyone",
}
"""Routes that check no role, and what they check instead."""


def route_table() -> list[tuple[str, str, str]]:
    """(rule, methods, who) for every route, sorted by rule."""
    rows = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static" and not Path(current_app.static_folder or "").is_dir():
            continue  # Flask's own static route: the app has no static folder
        methods = ",".join(sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
        view = current_app.view_functions[rule.endpoint]
        roles = getattr(view, "allowed_roles", None)
        if isinstance(roles, str):
            who = roles
        elif roles:
            who = " ".join(sorted(r.value for r in roles))
        else:
            who = next((what for prefix, what in PUBLIC_PREFIXES.items()
                        if rule.rule.startswith(prefix)), "not declared")
        rows.append((rule.rule, methods, who))
    return sorted(rows)


@click.command("access")
@with_appcontext
def access() -> None:
    """Print every route with its methods and the roles it allows."""
    rows = route_table()
    width = max(len(rule) for rule, _, _ in rows)
    for rule, methods, who in rows:
        click.echo(f"{rule:<{width}}  {methods:<11} {who}")


COMMANDS = [access]
