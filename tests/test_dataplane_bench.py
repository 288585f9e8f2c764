"""The data-plane benchmark (``make bench``) runs: its smoke mode, in a subprocess.

``benchmarks/dataplane.py --quick`` measures every case of docs/benchmarks.md (blocking,
streams at every split, ``generate_many``) in a few rounds, against the shared wire server;
the figures are not checked here (a shared machine is too noisy for that), only that the
comparison runs, sends both sides the same bytes and finds the concurrency it asks for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a subprocess of a few seconds: outside the fast lane

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "dataplane.py"


def test_the_data_plane_benchmark_runs_in_smoke_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = done.stdout
    assert "TCP_NODELAY checked" in report
    for row in ("generate API", "messages API", "| raw boto3 |"):
        assert row in report
    assert report.count("(16 in flight)") == 2  # generate_many(concurrency=16) ran 16 at once
    for split in ("every 1 B", "every 7 B", "every 64 B", "one per event"):
        assert report.count(split) == 2
