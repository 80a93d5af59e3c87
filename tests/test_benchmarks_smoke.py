"""The benchmark scripts run in their --quick settings and print their tables."""

import math
import re
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
    table = result.stdout[result.stdout.index(SCRIPTS[script]) :].split("\n\n")[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert rows, table
    if script == "verifiability":  # its quick start model, trained for seconds, writes no right solution: n/a
        return
    numbers = [float(x) for row in rows for x in re.findall(r"(?<![\w.])-?\d+\.\d+", row)]
    assert numbers and all(math.isfinite(x) and -1 <= x < 1e6 for x in numbers), table
    assert any(0.2 < x < 5 for x in numbers), table  # a ratio to the same work done plainly: near 1
