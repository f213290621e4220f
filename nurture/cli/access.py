"""`nurture access`: every route of the app and who may use it, on one screen."""

from __future__ import annotations

import re
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


SCREEN_WIDTH = 160
"""Characters a line of `nurture access` may take (a full-width terminal)."""


@click.command("access")
@click.option("--long", "long_form", is_flag=True,
              help="One route a line, with its methods and roles (more than a screen).")
@with_appcontext
def access(long_form: bool) -> None:
    """Print every route with its methods and the roles it allows: grouped by who may use
    them, the routes of a group side by side, so the whole table fits on one screen."""
    rows = route_table()
    if long_form:
        width = max(len(rule) for rule, _, _ in rows)
        for rule, methods, who in rows:
            click.echo(f"{rule:<{width}}  {methods:<11} {who}")
        return
    for line in grouped_lines(rows, SCREEN_WIDTH):
        click.echo(line)


def short_rule(rule: str) -> str:
    """A rule as the grouped table shows it: `<int:lead_id>` as `<lead_id>`."""
    return re.sub(r"<\w+:(\w+)>", r"<\1>", rule)


def grouped_lines(rows: list[tuple[str, str, str]], width: int) -> list[str]:
    """Each group of routes by who may use them: a heading, then the routes (a method other
    than GET written before the path) packed into lines of at most `width` characters."""
    groups: dict[str, list[str]] = {}
    for rule, methods, who in rows:
        shown = short_rule(rule) if methods == "GET" else f"{methods} {short_rule(rule)}"
        groups.setdefault(who, []).append(shown)
    lines = []
    for who in sorted(groups, key=lambda w: (-len(groups[w]), w)):
        lines.append(f"{who} ({len(groups[who])}):")
        line = " "
        for entry in groups[who]:
            if len(line) + 2 + len(entry) > width and line.strip():
                lines.append(line.rstrip())
                line = " "
            line += f" {entry} "
        if line.strip():
            lines.append(line.rstrip())
    return lines


COMMANDS = [access]
