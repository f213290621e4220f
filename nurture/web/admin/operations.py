"""The operators' pages (admin role): the overview, integrations (provider webhooks, SNS
subscriptions, the CRM webhook and mail), outbound CRM webhook deliveries with every attempt
and a redeliver button, the mail outbox, the RQ queues and workers, the suppression list.
Users and API tokens are in `operations_people`.

Views validate, call the same services as the API, the CLI and the jobs, commit, and redirect
with a flash (post/redirect/get). A redelivery is tried within the request by the worker's own
`deliver` (the row's claim keeps a worker from trying it at the same moment), so the operator
sees its attempt at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, flash, redirect, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import func, select

from campaigns.outbox import list_outbox, read_outbox_email
from nurture.clock import utcnow
from nurture.engagement.receipts import provider_activity
from nurture.engagement.webhooks import sns_subscriptions
from nurture.errors import Conflict, InvalidInput, NotFound
from nurture.handoffs import deliveries
from nurture.handoffs.delivery import Channels, deliver
from nurture.leads import suppressions
from nurture.models import ApiToken, Role, SuppressionReason, User
from nurture.web import database, db_session, redis, settings
from nurture.web.access import allow
from nurture.web.admin import operations_people  # noqa: F401  (users and tokens pages)
from nurture.web.admin.blueprint import bp
from nurture.web.admin.operations_forms import ActionForm, RemoveSuppressionForm
from nurture.web.admin.operations_pages import render
from workers import inspection

PROVIDER_NAMES = {"sendgrid": "SendGrid", "mailgun": "Mailgun", "postmark": "Postmark",
                  "ses": "Amazon SES (SNS)"}
"""How the integrations page names each provider webhook."""

OUTBOX_HTML_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                      "sandbox; frame-ancestors 'self'")
"""An outbox email's HTML, framed by its page: no script, nothing fetched, framed only here."""

OUTBOX_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                      "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
                      "form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
                      "base-uri 'none'")
"""The admin's policy, plus framing this site's own outbox HTML."""


@bp.get("/operations")
@allow(Role.ADMIN)
def operations() -> Any:
    session = db_session()
    activity = provider_activity(session, refusals=1)
    overview = {
        "users": session.execute(select(func.count()).select_from(User)
                                 .where(User.is_active.is_(True))).scalar_one(),
        "tokens": session.execute(select(func.count()).select_from(ApiToken)
                                  .where(ApiToken.revoked_at.is_(None))).scalar_one(),
        "providers": sum(_configured(p)[0] for p in PROVIDER_NAMES),
        "refusals": sum(1 for a in activity if a.refusals),
        "pending_sns": sum(1 for s in sns_subscriptions(session) if s["status"] == "pending"),
        "deliveries": deliveries.delivery_counts(session),
        "suppressions": sum(suppressions.suppression_counts(session).values()),
        "outbox": list_outbox(_outbox(), limit=0)[1] if not settings().smtp_url else None,
    }
    queues, queue_error = _queues()
    return _render("admin/operations/index.html", overview=overview, queues=queues,
                   queue_error=queue_error)


@bp.get("/operations/integrations")
@allow(Role.ADMIN)
def operations_integrations() -> Any:
    session = db_session()
    providers = [{"key": a.provider, "name": PROVIDER_NAMES[a.provider],
                  "configured": _configured(a.provider)[0], "needs": _configured(a.provider)[1],
                  "endpoint": settings().base_url.rstrip("/") + f"/webhooks/{a.provider}",
                  "activity": a} for a in provider_activity(session)]
    subscriptions = sns_subscriptions(session)
    return _render("admin/operations/integrations.html", providers=providers,
                   pending=[s for s in subscriptions if s["status"] == "pending"],
                   subscriptions=subscriptions, crm=_crm(), mail=_mail(),
                   counts=deliveries.delivery_counts(session))


@bp.get("/operations/deliveries")
@allow(Role.ADMIN)
def operations_deliveries() -> Any:
    status = request.args.get("status") or None
    if status not in (None, *_STATUSES):
        status = None
    before = request.args.get("before", type=int)
    session = db_session()
    found, next_before = deliveries.list_deliveries(session, status=status, before=before)
    return _render("admin/operations/deliveries.html", deliveries=found, status=status,
                   next_before=next_before, counts=deliveries.delivery_counts(session),
                   statuses=_STATUSES, crm=_crm(), action=ActionForm(), paged=before is not None)


@bp.post("/operations/deliveries/<int:notification_id>/redeliver")
@allow(Role.ADMIN)
def operations_redeliver(notification_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db_session()
    try:
        deliveries.redeliver(session, notification_id, actor=current_user.email, now=utcnow())
    except NotFound:
        abort(404)
    except Conflict as exc:
        session.rollback()
        flash(str(exc)[:1].upper() + str(exc)[1:] + ".", "error")
        return redirect(_back_to_deliveries(notification_id))
    session.commit()
    status = deliver(database(), notification_id, Channels.from_settings(settings()),
                     clock=utcnow)
    session.expire_all()
    latest = deliveries.get_delivery(session, notification_id).history
    said = _attempt_words(latest[-1]) if latest else ""
    if status == "delivered":
        flash(f"Delivery {notification_id} is delivered again{said}.", "success")
    elif status == "skipped":
        flash("CRM_WEBHOOK_URL is not set, so there is nowhere to deliver it: set it (and "
              "CRM_WEBHOOK_SECRET) and redeliver.", "warning")
    elif status == "pending":
        flash(f"The CRM refused it again{said}; it is retried with backoff.", "error")
    else:
        flash(f"Delivery {notification_id} is {status}{said}.",
              "error" if status == "failed" else "info")
    return redirect(_back_to_deliveries(notification_id))


@bp.get("/operations/outbox")
@allow(Role.ADMIN)
def operations_outbox() -> Any:
    emails, total = list_outbox(_outbox())
    return _render("admin/operations/outbox.html", emails=emails, total=total, mail=_mail())


@bp.get("/operations/outbox/<name>")
@allow(Role.ADMIN)
def operations_outbox_email(name: str) -> Any:
    try:
        email = read_outbox_email(_outbox(), name)
    except NotFound:
        abort(404)
    response = Response(_render("admin/operations/outbox_email.html", email=email))
    response.headers["Content-Security-Policy"] = OUTBOX_PAGE_POLICY
    return response


@bp.get("/operations/outbox/<name>/html")
@allow(Role.ADMIN)
def operations_outbox_html(name: str) -> Any:
    try:
        email = read_outbox_email(_outbox(), name)
    except NotFound:
        abort(404)
    if email.html is None:
        abort(404)
    response = Response(email.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = OUTBOX_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/operations/queues")
@allow(Role.ADMIN)
def operations_queues() -> Any:
    queues, error = _queues()
    connection = redis()
    workers, failed = [], []
    if connection is not None and error is None:
        try:
            workers = inspection.workers(connection)
            failed = inspection.failed_jobs(connection)
        except RedisError as exc:
            error = f"Redis did not answer: {exc}"
    return _render("admin/operations/queues.html", queues=queues, workers=workers,
                   failed=failed, error=error, action=ActionForm())


@bp.post("/operations/queues/failed/<job_id>/requeue")
@allow(Role.ADMIN)
def operations_requeue(job_id: str) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    connection = redis()
    if connection is None:
        abort(404)
    try:
        queue_name = inspection.requeue_failed(connection, job_id)
    except inspection.JobNotFound:
        flash(f"The job {job_id} is no longer among the failed ones (requeued already, or "
              "expired).", "warning")
    else:
        flash(f"The job {job_id} is back on the {queue_name} queue.", "success")
    return redirect(url_for("admin.operations_queues"))


@bp.get("/operations/suppressions")
@allow(Role.ADMIN)
def operations_suppressions() -> Any:
    query = (request.args.get("q") or "").strip()[:320]
    reason = request.args.get("reason") or None
    if reason not in (None, *(r.value for r in SuppressionReason)):
        reason = None
    after = request.args.get("after") or None
    session = db_session()
    found, next_after = suppressions.search_suppressions(session, query=query, reason=reason,
                                                         after=after)
    return _render("admin/operations/suppressions.html", suppressions=found, query=query,
                   reason=reason, next_after=next_after, paged=after is not None,
                   counts=suppressions.suppression_counts(session),
                   reasons=[r.value for r in SuppressionReason],
                   removals=suppressions.recent_removals(session, limit=10))


@bp.get("/operations/suppressions.csv")
@allow(Role.ADMIN)
def operations_suppressions_export() -> Any:
    store = database()

    def rows() -> Iterator[str]:
        # streamed after the request's own session is closed: a session of its own, closed
        # when the last row is sent (or the download is abandoned)
        with store.session_scope() as session:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(("email", "reason", "source", "suppressed_at"))
            for row in suppressions.export_suppressions(session):
                writer.writerow(_csv_safe(row))
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(rows(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="suppressions-{stamp}.csv"'})


@bp.route("/operations/suppressions/remove", methods=["GET", "POST"])
@allow(Role.ADMIN)
def operations_suppression_remove() -> Any:
    email = (request.values.get("email") or "").strip()
    session = db_session()
    try:
        suppression = suppressions.get_suppression(session, email)
    except NotFound:
        abort(404)
    form = RemoveSuppressionForm()
    if form.validate_on_submit():
        try:
            suppressions.remove_suppression(session, suppression.email,
                                            reason=form.reason.data or "",
                                            actor=current_user.email, now=utcnow())
        except InvalidInput as exc:
            session.rollback()
            form.reason.errors = [*form.reason.errors, *exc.errors.get("reason", [str(exc)])]
        else:
            session.commit()
            flash(f"{suppression.email} is off the suppression list; Nurture may email it "
                  "again. The reason is kept below.", "success")
            return redirect(url_for("admin.operations_suppressions"))
    return _render("admin/operations/suppression_remove.html", form=form,
                   suppression=suppression), 200 if not form.errors else 422


_STATUSES = ("pending", "failed", "delivered", "skipped")
"""The statuses a CRM webhook delivery can have (unknown is for emails only)."""


def _render(template: str, **context: Any) -> str:
    return render(template, providers_named=PROVIDER_NAMES, **context)


def _configured(provider: str) -> tuple[bool, tuple[str, ...]]:
    """Whether the provider's webhook is set up, and the settings it needs."""
    s = settings()
    if provider == "sendgrid":
        return bool(s.sendgrid_webhook_public_key), ("SENDGRID_WEBHOOK_PUBLIC_KEY",)
    if provider == "mailgun":
        return bool(s.mailgun_webhook_signing_key), ("MAILGUN_WEBHOOK_SIGNING_KEY",)
    if provider == "postmark":
        return (bool(s.postmark_webhook_username and s.postmark_webhook_password),
                ("POSTMARK_WEBHOOK_USERNAME", "POSTMARK_WEBHOOK_PASSWORD"))
    return bool(s.ses_sns_topic_arns), ("SES_SNS_TOPIC_ARNS",)


def _crm() -> dict[str, Any]:
    url = settings().crm_webhook_url
    return {"configured": bool(url and settings().crm_webhook_secret), "url": url}


def _mail() -> dict[str, Any]:
    """Where mail goes: the SMTP server (its address without credentials) or the outbox."""
    url = settings().smtp_url
    if not url:
        return {"smtp": None, "outbox": str(_outbox())}
    parts = urlsplit(url)
    return {"smtp": f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":"),
            "outbox": None}


def _outbox() -> Path:
    return Path(settings().instance_path) / "outbox"


def _queues() -> tuple[list[inspection.QueueCounts], str | None]:
    connection = redis()
    if connection is None:
        return [], ("This web process has no REDIS_URL, so it cannot see the queues (nurture "
                    "up passes the embedded Redis to its web server; a separate nurture serve "
                    "needs REDIS_URL).")
    try:
        return inspection.queue_counts(connection), None
    except RedisError as exc:
        return [], f"Redis did not answer: {exc}"


def _attempt_words(attempt: deliveries.Attempt) -> str:
    if attempt.status_code is not None:
        return f" (HTTP {attempt.status_code} in {attempt.duration_ms} ms)"
    return f" ({attempt.error})" if attempt.error else ""


def _back_to_deliveries(notification_id: int) -> str:
    return url_for("admin.operations_deliveries") + f"#delivery-{notification_id}"


def _csv_safe(row: tuple[str, ...]) -> tuple[str, ...]:
    """No cell a spreadsheet would run as a formula (CSV injection)."""
    return tuple("'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v for v in row)
