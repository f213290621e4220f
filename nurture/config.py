"""Settings: read once at start-up from the environment (CONTRACT.md), never at import time.

`load_settings(environ)` validates every variable and raises `SettingsError` naming the first
malformed one; entry points turn that into one clear line and a non-zero exit.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite:///instance/nurture.db"
"""Embedded default: SQLite in the instance folder (`instance/` of the working directory)."""

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
"""Absolute links in emails point here unless NURTURE_BASE_URL says otherwise."""

DEFAULT_MAIL_FROM = "Nurture <nurture@localhost>"
"""Sender of every email unless MAIL_FROM says otherwise."""

DEFAULT_INSTANCE_PATH = "instance"
"""Where the generated secret key, the SQLite file and uploads live (NURTURE_INSTANCE_PATH)."""

SECRET_KEY_FILE = "secret_key"
"""File name, inside the instance folder, of the generated per-instance secret key."""

ENV_NAMES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "NURTURE_BASE_URL",
    "NURTURE_INSTANCE_PATH",
    "SMTP_URL",
    "MAIL_FROM",
    "CRM_WEBHOOK_URL",
    "CRM_WEBHOOK_SECRET",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "MAILGUN_WEBHOOK_SIGNING_KEY",
    "POSTMARK_WEBHOOK_USERNAME",
    "POSTMARK_WEBHOOK_PASSWORD",
    "SES_SNS_TOPIC_ARNS",
    "SES_SNS_CERTIFICATES",
    "NURTURE_COMPANY_NAME",
    "NURTURE_POSTAL_ADDRESS",
    "NURTURE_TIMEZONE",
    "NURTURE_MAIL_PROVIDER",
    "NURTURE_FREQUENCY_CAP",
    "NURTURE_SLA",
    "NURTURE_SMTP_CONNECTIONS",
    "NURTURE_DIGEST_RECIPIENTS",
    "NURTURE_DIGEST_DAYS",
)

MAIL_PROVIDERS = ("none", "sendgrid", "mailgun", "postmark", "ses")
"""Relays whose header for `nurture_message_id` Nurture knows (NURTURE_MAIL_PROVIDER)."""

DEFAULT_FREQUENCY_CAP = "2/P7D"
"""At most this many nurture emails per lead per period, across all sequences."""

DEFAULT_SMTP_CONNECTIONS = 4
"""SMTP connections each sending job keeps open, each handing its own emails over."""

MAX_SMTP_CONNECTIONS = 32
"""More would look like an attack to most relays."""

DEFAULT_SLA = "PT1H"
"""Business time a rep has to act on a recycled lead before it escalates (NURTURE_SLA)."""

DEFAULT_DIGEST_DAYS = 14
"""The alignment digest covers this many days (NURTURE_DIGEST_DAYS): a fortnight."""

_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


class SettingsError(ValueError):
    """A setting is malformed; `str()` is one line that names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    """Every setting of CONTRACT.md, parsed and checked."""

    database_url: str
    redis_url: str | None
    secret_key: str
    base_url: str
    instance_path: Path
    smtp_url: str | None = None
    mail_from: str = DEFAULT_MAIL_FROM
    crm_webhook_url: str | None = None
    crm_webhook_secret: str | None = None
    sendgrid_webhook_public_key: bytes | None = None
    mailgun_webhook_signing_key: str | None = None
    postmark_webhook_username: str | None = None
    postmark_webhook_password: str | None = None
    ses_sns_topic_arns: tuple[str, ...] = field(default_factory=tuple)
    ses_sns_certificates: Path | None = None
    company_name: str = "Nurture"
    postal_address: str = "Postal address not set (NURTURE_POSTAL_ADDRESS)"
    timezone: str = "UTC"
    mail_provider: str = "none"
    frequency_cap: tuple[int, timedelta] = (2, timedelta(days=7))
    sla: timedelta = timedelta(hours=1)
    smtp_connections: int = DEFAULT_SMTP_CONNECTIONS
    digest_recipients: tuple[str, ...] = ()
    digest_days: int = DEFAULT_DIGEST_DAYS

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise `SettingsError` on the first malformed one."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    instance_path = Path(get("NURTURE_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH).resolve()
    crm_url = _http_url("CRM_WEBHOOK_URL", get("CRM_WEBHOOK_URL"))
    crm_secret = get("CRM_WEBHOOK_SECRET")
    if crm_url and not crm_secret:
        raise SettingsError("CRM_WEBHOOK_SECRET", "must be set when CRM_WEBHOOK_URL is set")
    pm_user, pm_password = get("POSTMARK_WEBHOOK_USERNAME"), get("POSTMARK_WEBHOOK_PASSWORD")
    if bool(pm_user) != bool(pm_password):
        missing = "POSTMARK_WEBHOOK_PASSWORD" if pm_user else "POSTMARK_WEBHOOK_USERNAME"
        raise SettingsError(missing, "set both POSTMARK_WEBHOOK_USERNAME and _PASSWORD, or neither")
    return Settings(
        database_url=_database_url(
            get("DATABASE_URL") or f"sqlite:///{instance_path / 'nurture.db'}"
        ),
        redis_url=_redis_url(get("REDIS_URL")),
        secret_key=get("SECRET_KEY") or "",  # filled by instance_secret_key() when empty
        base_url=_http_url("NURTURE_BASE_URL", get("NURTURE_BASE_URL") or DEFAULT_BASE_URL) or "",
        instance_path=instance_path,
        smtp_url=_smtp_url(get("SMTP_URL")),
        mail_from=_mail_from(get("MAIL_FROM") or DEFAULT_MAIL_FROM),
        crm_webhook_url=crm_url,
        crm_webhook_secret=crm_secret,
        sendgrid_webhook_public_key=_ec_public_key(get("SENDGRID_WEBHOOK_PUBLIC_KEY")),
        mailgun_webhook_signing_key=get("MAILGUN_WEBHOOK_SIGNING_KEY"),
        postmark_webhook_username=pm_user,
        postmark_webhook_password=pm_password,
        ses_sns_topic_arns=_topic_arns(get("SES_SNS_TOPIC_ARNS")),
        ses_sns_certificates=_directory("SES_SNS_CERTIFICATES", get("SES_SNS_CERTIFICATES")),
        company_name=get("NURTURE_COMPANY_NAME") or "Nurture",
        postal_address=get("NURTURE_POSTAL_ADDRESS") or Settings.postal_address,
        timezone=_timezone(get("NURTURE_TIMEZONE") or "UTC"),
        mail_provider=_choice("NURTURE_MAIL_PROVIDER", get("NURTURE_MAIL_PROVIDER") or "none",
                              MAIL_PROVIDERS),
        frequency_cap=_frequency_cap(get("NURTURE_FREQUENCY_CAP") or DEFAULT_FREQUENCY_CAP),
        sla=_sla(get("NURTURE_SLA") or DEFAULT_SLA),
        smtp_connections=_count("NURTURE_SMTP_CONNECTIONS", get("NURTURE_SMTP_CONNECTIONS"),
                                DEFAULT_SMTP_CONNECTIONS, MAX_SMTP_CONNECTIONS),
        digest_recipients=_addresses("NURTURE_DIGEST_RECIPIENTS",
                                     get("NURTURE_DIGEST_RECIPIENTS")),
        digest_days=_count("NURTURE_DIGEST_DAYS", get("NURTURE_DIGEST_DAYS"),
                           DEFAULT_DIGEST_DAYS, 366),
    )


def with_secret_key(settings: Settings) -> Settings:
    """Return settings whose secret key is set: SECRET_KEY, else the instance's generated one."""
    if settings.secret_key:
        return settings
    from dataclasses import replace

    return replace(settings, secret_key=instance_secret_key(settings.instance_path))


def instance_secret_key(instance_path: Path) -> str:
    """The per-instance secret key, generated on first use and kept in the instance folder.

    Several processes may start at once (`nurture up`): the key is written to a temporary file
    and linked into place, so every process reads the same complete key.
    """
    path = instance_path / SECRET_KEY_FILE
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        tmp = instance_path / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise SettingsError("SECRET_KEY", f"the generated key in {path} is damaged; delete it")
    return key


def _timezone(value: str) -> str:
    if value not in _zones():
        raise SettingsError("NURTURE_TIMEZONE", f"{value!r} is not an IANA time zone")
    return value


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA zone names, read once per process: listing them walks the tz database's
    files (milliseconds), and every job loads the settings."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _count(name: str, value: str | None, default: int, most: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise SettingsError(name, f"{value!r} is not a whole number from 1 to {most}")
    return int(value)


def _addresses(name: str, value: str | None) -> tuple[str, ...]:
    """Comma-separated email addresses, each checked and normalised."""
    from nurture.fields import normalize_email

    found: list[str] = []
    for part in (value or "").split(","):
        if not part.strip():
            continue
        try:
            address = normalize_email(part.strip())
        except ValueError:
            raise SettingsError(name, f"{part.strip()!r} is not an email address") from None
        if address not in found:
            found.append(address)
    return tuple(found)


def _frequency_cap(value: str) -> tuple[int, timedelta]:
    """`N/PERIOD`, e.g. `2/P7D`: at most N emails per lead in any such period."""
    import isodate

    count, _, period = value.partition("/")
    try:
        number = int(count)
        span = isodate.parse_duration(period)
    except (ValueError, isodate.ISO8601Error):
        number, span = 0, timedelta(0)
    if not isinstance(span, timedelta) or number < 1 or span <= timedelta(0):
        raise SettingsError(
            "NURTURE_FREQUENCY_CAP", f"{value!r} is not N/PERIOD, e.g. 2/P7D (days or less)"
        )
    return number, span


def _sla(value: str) -> timedelta:
    """An ISO 8601 duration of business time (days or less), e.g. PT1H or PT30M."""
    import isodate

    try:
        span = isodate.parse_duration(value)
    except (ValueError, isodate.ISO8601Error):
        span = timedelta(0)
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise SettingsError("NURTURE_SLA", f"{value!r} is not an ISO 8601 duration, e.g. PT1H")
    return span


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases and in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _database_url(value: str) -> str:
    try:
        url: URL = make_url(value)
    except ArgumentError:
        raise SettingsError("DATABASE_URL", f"not a database URL: {value!r}") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        # psycopg 3 is the one driver we ship; plain postgresql:// URLs mean it.
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        raise SettingsError("DATABASE_URL", f"use postgresql+psycopg://, not {url.drivername}://")
    if backend == "sqlite":
        if url.drivername != "sqlite":
            raise SettingsError("DATABASE_URL", f"use sqlite:///PATH, not {url.drivername}://")
        return value
    raise SettingsError(
        "DATABASE_URL", f"unsupported database {backend!r}; use sqlite:/// or postgresql+psycopg://"
    )


def _redis_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError("REDIS_URL", f"use redis://, rediss:// or unix://, not {value!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError("REDIS_URL", f"no host in {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SettingsError("REDIS_URL", f"bad port in {value!r}") from None
    return value


def _http_url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(name, f"must be an http:// or https:// URL with a host, got {value!r}")
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise SettingsError(name, f"bad port in {value!r}") from None
    return value.rstrip("/")


def _smtp_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
        raise SettingsError(
            "SMTP_URL", f"use smtp://host:port, smtp+starttls://… or smtps://…, not {value!r}"
        )
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise SettingsError("SMTP_URL", f"bad port in {value!r}") from None
    return value


def _mail_from(value: str) -> str:
    """A sender as in a From header; local domains (localhost) are fine for a sender."""
    from email.errors import HeaderParseError
    from email.headerregistry import Address

    _, address = parseaddr(value)
    try:
        parsed = Address(addr_spec=address)
    except (HeaderParseError, ValueError, IndexError):
        parsed = None
    if parsed is None or not parsed.username or not parsed.domain:
        raise SettingsError("MAIL_FROM", f"{value!r} has no valid sender address")
    return value


def _ec_public_key(value: str | None) -> bytes | None:
    """SendGrid shows its key as base64 DER (SPKI) of an ECDSA P-256 key."""
    if value is None:
        return None
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        der = base64.b64decode(value, validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError):
        raise SettingsError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY", "not a base64 DER public key as SendGrid shows it"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SettingsError("SENDGRID_WEBHOOK_PUBLIC_KEY", "must be an ECDSA P-256 key")
    return der


def _topic_arns(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    arns = tuple(a.strip() for a in value.split(",") if a.strip())
    for arn in arns:
        if not _SNS_TOPIC_ARN.match(arn):
            raise SettingsError("SES_SNS_TOPIC_ARNS", f"not an SNS topic ARN: {arn!r}")
    return arns


def _directory(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_dir():
        raise SettingsError(name, f"{value!r} is not a directory")
    return path.resolve()
