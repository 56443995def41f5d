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
        [dagster, "asset", "materialize", "-m", "pairs_assets.definitions", "--select", "raw_bars",
         "--partition-range", "2022-12-01|technology...2022-12-28|technology"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-3000:]
    assert " - DEBUG - " not in output, [line for line in output.splitlines() if " - DEBUG - " in line][:5]
    assert len(output.splitlines()) < 30, output[-3000:]  # was one line per event: hundreds for 19 partitions
