"""Handoffs: a qualified lead recycled to the right rep at once, with the evidence, and the
SLA loop: the rep accepts (the lead leaves nurture) or rejects again with a reason (it
returns to nurture, routed by that reason); a handoff not acted on in time escalates.
The CRM hears of each handoff through the signed outbound webhook of CONTRACT.md.
"""
