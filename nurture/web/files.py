"""Uploaded collateral as leads download it from the links in their emails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, send_from_directory

from campaigns.collateral import public_file
from nurture.clock import utcnow
from nurture.errors import Gone, NotFound
from nurture.web import db_session, settings

bp = Blueprint("files", __name__)


@bp.get("/files/<int:version_id>/<path:file_name>")
def download(version_id: int, file_name: str) -> Any:
    """An approved collateral file; 404 unless approved, 410 once retired or expired."""
    try:
        version = public_file(db_session(), version_id, file_name, today=utcnow().date())
    except NotFound:
        abort(404)
    except Gone:
        abort(410)
    response = send_from_directory(
        Path(settings().instance_path) / "uploads", version.file_path or "",
        mimetype=version.content_type, download_name=version.file_name, as_attachment=False,
        max_age=3600,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
