"""Docs that are generated must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_readme.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
