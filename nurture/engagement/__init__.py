"""Engagement ingest: provider webhooks, Nurture's own tracking and the events API, stored
once each as `EngagementEvent` rows, then handed to scoring.

`providers/` authenticates and parses each provider's requests into `ProviderEvent`s (pure:
no database, no Flask); the services here store them (idempotent, in one transaction per
request), match them to leads and messages, apply suppressions, and flag machine engagement.
"""
