"""Documents marketing and sales sign together (the scoring model, the SLA): one lifecycle."""
