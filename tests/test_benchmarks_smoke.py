"""The benchmark scripts run in their --quick settings and print their tables."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {  # script: the header its table starts with
    "train_step": "| model | L |",
    "test_time_scoring": "| model | L |",
    "generation_throughput": "| model | L |",
    "scaling": "| model | L |",
    "verifiability": "| step | train AUROC |",
}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_benchmark_runs_quick(script):
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert SCRIPTS[script] in result.stdout
    assert "|---|" in result.stdout
