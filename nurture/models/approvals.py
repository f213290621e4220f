"""What every approved document shares: its status and the two roles that approve it.

A scoring model and the SLA are both documents that marketing and sales sign together;
they go through the same states and are approved by the same two roles
(`nurture.approvals` holds the one lifecycle both use).
"""

from __future__ import annotations

import enum


class DocumentStatus(enum.StrEnum):
    DRAFT = "draft"
    """Being reviewed; needs a marketer's and a sales approver's approval."""
    APPROVED = "approved"
    """Both approvals recorded; either may still be withdrawn until activation."""
    ACTIVE = "active"
    """The one version in force now."""
    RETIRED = "retired"
    """Replaced or withdrawn from use for good."""


class ApprovalRole(enum.StrEnum):
    MARKETER = "marketer"
    SALES_APPROVER = "sales_approver"
