"""The marketers', approvers' and operators' admin: server-rendered pages on the same services
as the API and the CLI (no rule lives in a view).

One module per area, each adding its pages to the one `admin` blueprint:

- `dashboard`: the home page both teams watch;
- `sequences`: the sequence list and builder;
- `emails`: the email templates;
- `collateral`: the collateral library;
- `leads`: lead search, the lead page, bulk actions, CSV import;
- `scoring`: the scoring model and the SLA, drafts to activation;
- `reports`: the revenue-loop numbers as charts, tables and CSV;
- `approvals`: the sales approvers' queue;
- `operations`: users, tokens, integrations, deliveries, queues, suppressions (admin role).
"""

from __future__ import annotations

# each module registers its pages on `bp` when imported
from nurture.web.admin import (  # noqa: F401  (imported for their routes)
    approvals,
    collateral,
    dashboard,
    emails,
    leads,
    operations,
    reports,
    scoring,
    sequences,
)
from nurture.web.admin.blueprint import bp

__all__ = ["bp"]
