"""The collateral library as marketers browse it: each asset with its newest version, the
version sequences send today, where it is used and its numbers.

Reads only; every change goes through `campaigns.collateral` (the approval workflow) and
`campaigns.uploads` (the files), as the API's do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.collateral import history, sendable_versions
from campaigns.feedback import feedback_counts
from campaigns.usage import Usage, collateral_usage
from nurture.errors import NotFound
from nurture.models import Collateral, CollateralStatus, CollateralTransition, CollateralVersion


@dataclass(frozen=True)
class Asset:
    key: str
    latest: CollateralVersion
    sendable: CollateralVersion | None
    """The version sequences feature today (newest approved, unexpired), if any."""
    expired: bool
    """Its newest approved version has expired."""
    usage: list[Usage] = field(default_factory=list)


@dataclass(frozen=True)
class AssetDetail:
    asset: Asset
    versions: list[tuple[CollateralVersion, list[CollateralTransition]]]
    feedback: dict[int, tuple[int, int]]
    """Version id → the reps' (useful, not useful)."""


def list_assets(session: Session, *, today: date, stage: str | None = None,
                status: str | None = None) -> list[Asset]:
    """Every asset, newest version first in mind: filtered by its newest version's funnel
    stage and by status (`sendable`, or a workflow status of the newest version)."""
    rows = session.execute(
        select(Collateral.key, CollateralVersion)
        .join(CollateralVersion, CollateralVersion.collateral_id == Collateral.id)
        .order_by(Collateral.key, CollateralVersion.version.desc())
    ).all()
    latest: dict[str, CollateralVersion] = {}
    approved: dict[str, CollateralVersion] = {}
    for key, version in rows:
        latest.setdefault(key, version)
        if version.status == CollateralStatus.APPROVED:
            approved.setdefault(key, version)
    sendable = sendable_versions(session, latest, today=today)
    usage = collateral_usage(session)
    assets = []
    for key, version in latest.items():
        asset = Asset(key, version, sendable.get(key),
                      expired=key in approved and key not in sendable,
                      usage=usage.get(key, []))
        if stage and version.funnel_stage.value != stage:
            continue
        if status == "sendable" and asset.sendable is None:
            continue
        if status and status not in ("sendable", version.status.value):
            continue
        assets.append(asset)
    assets.sort(key=lambda a: a.latest.created_at, reverse=True)
    return assets


def asset_detail(session: Session, key: str, *, today: date) -> AssetDetail:
    collateral = session.execute(select(Collateral).where(Collateral.key == key)
                                 ).scalar_one_or_none()
    if collateral is None:
        raise NotFound(f"no collateral {key!r}")
    versions = list(session.execute(
        select(CollateralVersion).where(CollateralVersion.collateral_id == collateral.id)
        .order_by(CollateralVersion.version.desc())).scalars())
    sendable = sendable_versions(session, [key], today=today).get(key)
    approved = any(v.status == CollateralStatus.APPROVED for v in versions)
    asset = Asset(key, versions[0], sendable, expired=approved and sendable is None,
                  usage=collateral_usage(session).get(key, []))
    return AssetDetail(
        asset=asset,
        versions=[(v, list(reversed(history(session, v.id)))) for v in versions],
        feedback=feedback_counts(session, [v.id for v in versions]),
    )


def version_fields(version: CollateralVersion) -> dict[str, Any]:
    """A version's fields, to start the next version from."""
    return {"title": version.title, "url": version.url if not version.file_path else None,
            "funnel_stage": version.funnel_stage.value, "personas": list(version.personas),
            "industries": list(version.industries), "expires_on": version.expires_on}
