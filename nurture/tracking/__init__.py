"""Tracking: provider webhook adapters (verify and normalise) and open/click/unsubscribe tokens."""
