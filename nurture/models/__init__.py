"""The SQLAlchemy models: one module per domain area, all on one `Base.metadata`."""

from nurture.models.accounts import ApiToken, Role, User
from nurture.models.base import Base
from nurture.models.campaigns import (
    LIVE_ENROLLMENT,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Message,
    MessageCollateral,
    MessageStatus,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Suppression,
    SuppressionReason,
)
from nurture.models.collateral import (
    Collateral,
    CollateralStatus,
    CollateralTransition,
    CollateralVersion,
    FunnelStage,
)
from nurture.models.engagement import (
    EngagementEvent,
    EventType,
    MailgunToken,
    SnsSubscription,
    SnsSubscriptionStatus,
)
from nurture.models.leads import Lead, LifecycleChange, LifecycleStage, Rejection, RejectionReason

__all__ = [
    "LIVE_ENROLLMENT",
    "ApiToken",
    "Base",
    "Collateral",
    "CollateralStatus",
    "CollateralTransition",
    "CollateralVersion",
    "EngagementEvent",
    "Enrollment",
    "EnrollmentEvent",
    "EnrollmentStatus",
    "EventType",
    "FunnelStage",
    "Lead",
    "LifecycleChange",
    "LifecycleStage",
    "MailgunToken",
    "Message",
    "MessageCollateral",
    "MessageStatus",
    "Rejection",
    "RejectionReason",
    "Role",
    "Sequence",
    "SequenceStatus",
    "SequenceVersion",
    "SnsSubscription",
    "SnsSubscriptionStatus",
    "Suppression",
    "SuppressionReason",
    "User",
]
