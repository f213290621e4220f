"""Intake: leads from the CRM, rejections from sales, bulk import."""
