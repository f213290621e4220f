"""Nurture: holds the leads sales rejected or that are not ready, and sends them back when they qualify."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

MAX_REQUEST_BYTES = 1024 * 1024
"""Largest request body the service reads (API and webhooks); larger is 413."""


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web application.

    `test_config` may override settings by their environment names (``DATABASE_URL`` …) and
    set any Flask configuration key.
    """
    from nurture.config import ENV_NAMES, load_settings, with_secret_key

    overrides = dict(test_config or {})
    env = {**os.environ, **{k: str(v) for k, v in overrides.items() if k in ENV_NAMES}}
    settings = with_secret_key(load_settings(env))

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
    )
    app.config.update({k: v for k, v in overrides.items() if k not in ENV_NAMES})
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep their documented order
    app.extensions["nurture.settings"] = settings

    from nurture import web

    web.init_app(app)

    from nurture.web import (
        admin,
        api,
        auth,
        files,
        health,
        layout,
        reps,
        security,
        tracking,
        webhooks,
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(tracking.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(webhooks.bp)
    security.init_app(app, settings)
    app.register_blueprint(layout.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(reps.bp)
    return app
