"""Imports point down: entry points → services → models → settings and storage (STYLE.md)."""

import shutil
import subprocess
from pathlib import Path


def test_import_linter_contracts_hold():
    root = Path(__file__).resolve().parent.parent
    lint = shutil.which("lint-imports") or str(Path(__import__("sys").executable).parent / "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
