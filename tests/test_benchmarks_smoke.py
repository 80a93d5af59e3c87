"""The benchmark scripts run in their --quick settings and print their tables."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["train_step", "test_time_scoring", "generation_throughput", "scaling"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quick(script):
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| model | L |" in result.stdout
    assert "|---|" in result.stdout
