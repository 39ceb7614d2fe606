"""The fault-injection script as a slow test: every probe ends as the README promises (minutes; not in .ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_fault_probe_ends_as_promised(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fault_probes.py"), "--work", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
