"""The README's result tables are generated from committed demo runs, not typed in."""

import json
from pathlib import Path

import pytest

from laser_rl.demo.report import readme_tables

ROOT = Path(__file__).resolve().parents[1]
# report.json of runs that the README quotes, as `laser demo` wrote them (docs/results/README.md says how).
RUNS = ["tiny-seed0", "smollm2-135m-instruct-seed0"]


@pytest.mark.parametrize("run", RUNS)
def test_the_readme_shows_the_tables_laser_demo_renders_for_the_committed_run(run):
    summary = json.loads((ROOT / "docs" / "results" / run / "report.json").read_text())
    assert readme_tables(summary) in (ROOT / "README.md").read_text()
