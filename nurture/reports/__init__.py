"""Reports: the numbers both teams know, read from the rollups (docs/REPORTS.md)."""
