"""Scoring: the one approved definition of a qualified lead, explainable scores, backtests.

A scoring model is a versioned document (fit rules, engagement rules with caps, negative
rules, a half-life, thresholds), approved by a marketer and a sales approver before it is
active; exactly one is active. Each stored engagement event updates its lead's score in
O(1) (a decayed sum with its reference time) and appends to the score ledger; a lead that
crosses the thresholds is handed to `nurture.handoffs`.
"""
