"""Users (who sign in, with which role) and API tokens (how integrations authenticate)."""
