"""What waits for a sales approver (collateral versions, scoring model and SLA drafts), each
with its readable diff against the version now approved, the approvers' decisions, and the
comment that goes back to an author."""
