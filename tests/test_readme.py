"""The README's result tables are generated from committed demo runs, not typed in."""

import json
from pathlib import Path

import pytest

from laser_rl.demo.report import readme_tables, spread_tables

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
# report.json of runs that the README and docs quote, as `laser demo` wrote them (docs/results/README.md says how)
SHOWN = {"tiny-seed0": "README.md", "smollm2-135m-instruct-seed0": "docs/real-model.md"}
SMOLLM2_SEEDS = sorted(RESULTS.glob("smollm2-135m-instruct-seed[0-9]*"))


def summary(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


@pytest.mark.parametrize(("run", "page"), SHOWN.items())
def test_the_tables_are_those_laser_demo_renders_for_the_committed_run(run, page):
    assert readme_tables(summary(RESULTS / run)) in (ROOT / page).read_text()


def test_the_readme_shows_the_smollm2_seeds_mean_std_and_rows_from_their_committed_reports():
    summaries = {int(folder.name.rsplit("seed", 1)[1]): summary(folder) for folder in SMOLLM2_SEEDS}
    assert len(summaries) >= 2
    assert spread_tables(summaries) in (ROOT / "README.md").read_text()
