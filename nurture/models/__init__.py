"""The SQLAlchemy models: one module per domain area, all on one `Base.metadata`."""

from nurture.models.accounts import ApiToken, Role, User
from nurture.models.base import Base
from nurture.models.leads import Lead, LifecycleChange, LifecycleStage, Rejection, RejectionReason

__all__ = [
    "ApiToken",
    "Base",
    "Lead",
    "LifecycleChange",
    "LifecycleStage",
    "Rejection",
    "RejectionReason",
    "Role",
    "User",
]
