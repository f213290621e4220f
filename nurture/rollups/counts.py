"""Daily counters (`report_counts`): add to them in one upsert per batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from nurture.models import ReportCount

DIMENSIONS = ("reason", "sequence_id", "step_id", "rep_email", "team", "source",
              "collateral_id")
"""The columns a counter is keyed by besides day and metric ('' or 0 when not relevant)."""

_EMPTY = {"reason": "", "sequence_id": 0, "step_id": "", "rep_email": "", "team": "",
          "source": "", "collateral_id": 0}
_WIDTH = {"reason": 64, "step_id": 100, "rep_email": 320, "team": 100, "source": 255}

Key = tuple[Any, ...]


def day_of(at: datetime) -> date:
    """The UTC day a moment is counted on."""
    return at.astimezone(UTC).date()


def key(metric: str, at: datetime, **dims: Any) -> Key:
    """The counter a fact adds to: (day, metric, *DIMENSIONS), empty dimensions filled in."""
    values = []
    for name in DIMENSIONS:
        value = dims.get(name)
        if value is None:
            value = _EMPTY[name]
        elif name in _WIDTH:
            value = str(value)[:_WIDTH[name]]
        values.append(value)
    return (day_of(at), metric, *values)


def count(session: Session, metric: str, at: datetime, *, n: int = 1,
          amount: Decimal | int = 0, **dims: Any) -> None:
    """Add `n` (and `amount`) to the counter of `metric` on `at`'s day for these dimensions."""
    add_counts(session, [(key(metric, at, **dims), n, Decimal(amount))])


def add_counts(session: Session, rows: Iterable[tuple[Key, int, Decimal]]) -> None:
    """Add many increments at once: summed by counter first, then one upsert, in key order
    (two transactions adding to the same counters lock them in the same order)."""
    totals: Counter[Key] = Counter()
    amounts: dict[Key, Decimal] = {}
    for counter_key, n, amount in rows:
        totals[counter_key] += n
        amounts[counter_key] = amounts.get(counter_key, Decimal(0)) + amount
    if not totals:
        return
    values = [
        {"day": k[0], "metric": k[1], **dict(zip(DIMENSIONS, k[2:], strict=True)),
         "n": totals[k], "amount": amounts[k]}
        for k in sorted(totals, key=_sortable)
    ]
    session.flush()
    session.execute(_upsert(session), values)


def _sortable(counter_key: Key) -> tuple[str, ...]:
    return tuple(str(part) for part in counter_key)


def _upsert(session: Session) -> Any:
    """The upsert, one text for both databases (`ON CONFLICT … DO UPDATE` is SQLite's and
    PostgreSQL's alike): SQLAlchemy cannot cache the compiled form of its own
    `on_conflict_do_update`, which it compiled again at every call (about a tenth of the
    CPU of `nurture seed-demo`); a text is compiled once."""
    return _UPSERT


_COLUMNS = ("day", "metric", *DIMENSIONS)
_UPSERT = text(
    "INSERT INTO report_counts ({columns}, n, amount) VALUES ({values}, :n, :amount) "
    "ON CONFLICT ({columns}) DO UPDATE SET n = report_counts.n + excluded.n, "
    "amount = report_counts.amount + excluded.amount".format(
        columns=", ".join(_COLUMNS), values=", ".join(f":{name}" for name in _COLUMNS))
).bindparams(bindparam("day", type_=ReportCount.__table__.c.day.type),
             bindparam("amount", type_=ReportCount.__table__.c.amount.type))
