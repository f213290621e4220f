"""Validators for the values every part of Nurture takes in: email, country, time zone.

Each takes a string and returns the normalised value or raises ValueError with a message fit
to show a user; pydantic schemas use them as `AfterValidator`s.
"""

from __future__ import annotations

import zoneinfo
from functools import cache, lru_cache
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

MAX_EMAIL_LENGTH = 320
"""RFC 5321 path limit: 64 for the local part, @, 255 for the domain."""


@lru_cache(maxsize=8_192)  # email-validator costs ~0.2 ms an address; ingest sees each many times
# (small: an import sees each address once, and its workers should not hold them all)
def normalize_email(value: str) -> str:
    """The address as Nurture stores and matches it: syntax checked, Unicode-normalised, lowercase.

    The whole address is lowercased: mailbox providers treat local parts case-insensitively
    in practice, and CRMs send the same person with differing case.
    """
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.normalized.lower()


def forbid_nul(value: str) -> str:
    """PostgreSQL text cannot hold U+0000; refuse it at the door rather than fail on insert."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


def forbid_nul_in_json(value: object, path: str = "") -> None:
    """Refuse U+0000 anywhere in a JSON value: keys and strings, at any depth."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"must not contain the NUL character (U+0000){' at ' + path if path else ''}")
    elif isinstance(value, dict):
        for key, item in value.items():
            forbid_nul_in_json(key, path)
            forbid_nul_in_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            forbid_nul_in_json(item, f"{path}[{index}]")


@cache
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


def normalize_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, uppercased."""
    code = value.strip().upper()
    if code not in _countries():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalize_timezone(value: str) -> str:
    """An IANA time zone name, as spelled in the tz database."""
    name = value.strip()
    if name not in _timezones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return name


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Pydantic's errors as `{path: [message, …]}`, paths like `lead.email` or `items[2].id`."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        errors.setdefault(path or "body", []).append(_message(error))
    return errors


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
