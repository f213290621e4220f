"""Domain errors: services raise these, entry points turn them into HTTP answers or CLI lines."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class Conflict(DomainError):
    """The request contradicts the current state (duplicate, wrong lifecycle step).

    `errors` may name what conflicts, e.g. each step of a sequence that cannot be activated.
    """

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a domain rule; `errors` maps field → messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class Forbidden(DomainError):
    """The caller's role may not take this action."""


class Gone(DomainError):
    """It existed but is withdrawn for good (retired or expired collateral)."""
