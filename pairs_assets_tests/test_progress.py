"""Progress instead of silence, and no DEBUG line per event (issue 9, item 17)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pairs_assets_tests.planted import planted_closes, write_bars_file

ROOT = Path(__file__).resolve().parents[1]


def test_a_partition_range_run_with_dagsters_cli_prints_no_debug_line_per_event(tmp_path):
    bars = write_bars_file(tmp_path / "bars.csv", planted_closes(n_sessions=30)[["AAPL", "AMD", "MSFT"]])
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")  # what `pairs init` does
    env = {**os.environ, "PAIRS_HOME": str(home), "PAIRS_BARS_FILE": bars, "DAGSTER_HOME": str(home / "dagster")}
    dagster = str(Path(sys.executable).with_name("dagster"))
    process = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "pairs_assets.definitions",
            "--select",
            "raw_bars",
            "--partition-range",
            "2022-12-01|technology...2022-12-28|technology",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-3000:]
    assert " - DEBUG - " not in output, [line for line in output.splitlines() if " - DEBUG - " in line][:5]
    assert len(output.splitlines()) < 30, output[-3000:]  # was one line per event: hundreds for 19 partitions


def test_the_progress_line_says_whether_it_creates_the_run_writes_the_bars_or_records_partitions():
    import dagster as dg

    from pairs_assets.instance.progress import RunProgress

    with dg.instance_for_test() as instance:
        progress = RunProgress(
            instance, "no-such-run", total=7_920, label="raw_bars", checks_total=47_520, write=lambda _: None
        )
        progress._t0 = 0.0
        progress.planned = 1_000
        assert "creating the run, 1,000/7,920 planned partitions recorded" in progress.line()
        progress.started = True
        assert "run started: reading, validating and writing the bars" in progress.line()
        progress.done, progress.checks_done = 10, 60
        assert "bars written; 10/7,920 partitions recorded, checks 60/47,520" in progress.line()
