"""`pairs launch` = `dagster job launch` on the project's workspace, printing the run id (issue 21 item 12:
Dagster's own command prints none). A real launch on a fresh local instance: the run is queued (no
daemon runs here) and the printed id is that run's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pairs_launch_prints_the_id_of_the_run_it_queued(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAIRS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairs_assets.cli",
            "launch",
            "-j",
            "signal_job",
            "--tags",
            '{"dagster/partition": "2022-12-28|consumer"}',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # generous: loading the code location
    )
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(
        r"^run ([0-9a-f-]{36}) QUEUED \(job signal_job, partition 2022-12-28\|consumer\); follow it: ",
        result.stdout,
        re.M,
    )
    assert match, result.stdout
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
        assert [run.run_id for run in runs] == [match.group(1)]
        assert runs[0].tags["dagster/partition"] == "2022-12-28|consumer"
