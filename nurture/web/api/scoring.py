"""Scoring models (JSON or YAML documents), their approval and activation, and backtests."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from nurture.clock import utcnow
from nurture.models import Role
from nurture.scoring import backtest as backtests
from nurture.scoring import lifecycle
from nurture.scoring.document import load_text
from nurture.web import db_session, read_body, redis
from nurture.web.api import bp, current_actor, json_body, requires
from nurture.web.problems import ProblemError
from workers.queues import enqueue

log = logging.getLogger(__name__)

EDITORS = (Role.ADMIN, Role.MARKETER)
APPROVERS = (Role.MARKETER, Role.SALES_APPROVER)
DECIDERS = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)
READERS = (Role.ADMIN, Role.MARKETER, Role.SALES_APPROVER)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class BacktestIn(BaseModel):
    """Run the model over the last `days` of stored engagement."""

    model_config = ConfigDict(extra="forbid", strict=True)

    days: Annotated[int, Field(ge=1, le=backtests.MAX_DAYS)] = 90


@bp.post("/scoring/models")
@requires(*EDITORS)
def create_scoring_model() -> Any:
    is_yaml = request.mimetype in YAML_TYPES
    if not is_yaml and request.mimetype != "application/json":
        raise ProblemError(415, "send the model as application/json or application/yaml, "
                                f"not {request.mimetype or 'none'}")
    try:
        data = load_text(read_body(), yaml_format=is_yaml)
    except ValueError as exc:
        raise ProblemError(400, str(exc)) from None
    session = db_session()
    model = lifecycle.create_model(session, data, actor=current_actor().email, now=utcnow())
    document = lifecycle.model_summary(session, model, with_document=True)
    session.commit()
    return document, 201


@bp.get("/scoring/models")
@requires(*READERS)
def list_scoring_models() -> Any:
    session = db_session()
    return {"models": [lifecycle.model_summary(session, m)
                       for m in lifecycle.list_models(session)]}


@bp.get("/scoring/models/<int:model_id>")
@requires(*READERS)
def get_scoring_model(model_id: int) -> Any:
    session = db_session()
    return lifecycle.model_summary(session, lifecycle.get_model(session, model_id),
                                   with_document=True)


@bp.post("/scoring/models/<int:model_id>/approve")
@requires(*APPROVERS)
def approve_scoring_model(model_id: int) -> Any:
    session = db_session()
    model = lifecycle.approve_model(session, model_id, actor=current_actor(), now=utcnow())
    summary = lifecycle.model_summary(session, model)
    session.commit()
    return summary


@bp.post("/scoring/models/<int:model_id>/withdraw")
@requires(*APPROVERS)
def withdraw_scoring_approval(model_id: int) -> Any:
    session = db_session()
    model = lifecycle.withdraw_approval(session, model_id, actor=current_actor(), now=utcnow())
    summary = lifecycle.model_summary(session, model)
    session.commit()
    return summary


@bp.post("/scoring/models/<int:model_id>/activate")
@requires(*DECIDERS)
def activate_scoring_model(model_id: int) -> Any:
    """409 without both approvals; every lead is then re-scored in the background."""
    session = db_session()
    model, _ = lifecycle.activate_model(session, model_id, actor=current_actor().email,
                                        now=utcnow())
    summary = lifecycle.model_summary(session, model)
    session.commit()
    _enqueue("rescore_leads", model.id)
    return summary


@bp.post("/scoring/models/<int:model_id>/retire")
@requires(*DECIDERS)
def retire_scoring_model(model_id: int) -> Any:
    session = db_session()
    model = lifecycle.retire_model(session, model_id, actor=current_actor().email, now=utcnow())
    summary = lifecycle.model_summary(session, model)
    session.commit()
    return summary


@bp.post("/scoring/models/<int:model_id>/backtests")
@requires(*READERS)
def request_backtest(model_id: int) -> Any:
    """202: the backtest runs in the background; GET /scoring/backtests/{id} shows it."""
    body = json_body(BacktestIn)
    session = db_session()
    backtest = backtests.request_backtest(session, model_id, days=body.days,
                                          actor=current_actor().email, now=utcnow())
    document = backtests.backtest_document(backtest)
    session.commit()
    _enqueue("run_backtest", backtest.id)
    return document, 202


@bp.get("/scoring/backtests/<int:backtest_id>")
@requires(*READERS)
def get_backtest(backtest_id: int) -> Any:
    return backtests.backtest_document(backtests.get_backtest(db_session(), backtest_id))


def _enqueue(kind: str, row_id: int) -> None:
    """The work is recorded in the database; if Redis does not take the job now, the
    `nurture scoring` commands can run it (the answer does not fail for it)."""
    connection = redis()
    if connection is None:
        return
    try:
        enqueue(connection, kind, row_id)
    except RedisError:
        log.warning("%s %d recorded but not enqueued", kind, row_id, exc_info=True)
