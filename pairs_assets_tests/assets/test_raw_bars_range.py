"""A range load with one gap (issue 9, item 7): nothing written, no run started, the gap named.

Before, `pairs load-bars` over a range whose last session lacked one symbol's bar started a
single-run backfill that failed, and the UI marked every session of the range failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from pairs_assets_tests.planted import planted_closes, write_bars_file

ROOT = Path(__file__).resolve().parents[2]
TECH = ["AAPL", "AMD", "MSFT"]


def _load_bars(home: Path, bars: str, start: str, end: str) -> subprocess.CompletedProcess:
    """``pairs load-bars`` in its own process (the bar source is fixed when the definitions load)."""
    env = {**os.environ, "PAIRS_HOME": str(home), "PAIRS_BARS_FILE": bars}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pairs_assets.cli",
            "load-bars",
            "--start",
            start,
            "--end",
            end,
            "--sector",
            "technology",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _failed_partitions_and_runs(home: Path) -> tuple[int, int]:
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    from pairs_assets.definitions import defs

    if not (home / "dagster").is_dir():
        return 0, 0  # no instance was even created
    key = dg.AssetKey("raw_bars")
    partitions_def = defs.resolve_asset_graph().get(key).partitions_def
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster"))) as instance:
        value = get_and_update_asset_status_cache_value(instance, key, partitions_def)
        failed = len(value.deserialize_failed_partition_subsets(partitions_def).get_partition_keys()) if value else 0
        return failed, instance.get_runs_count()


def _stored_bars(home: Path) -> int:
    path = home / "market_data.sqlite"
    if not path.exists():
        return 0
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return conn.execute(sa.text("select count(*) from bars")).scalar() if "bars" in tables else 0
    finally:
        engine.dispose()


def test_a_gap_at_the_end_of_the_range_loads_nothing_starts_no_run_and_names_session_and_symbol(tmp_path):
    closes = planted_closes(n_sessions=30)[TECH]
    path = write_bars_file(tmp_path / "bars.csv", closes)
    frame = pd.read_csv(path)
    frame = frame[
        ~((frame["symbol"] == "MSFT") & (frame["timestamp"] == "2022-12-28"))
    ]  # one bar missing, last session
    frame.to_csv(path, index=False)
    home = tmp_path / "home"

    process = _load_bars(home, path, "2022-12-01", "2022-12-28")

    assert process.returncode == 2, process.stderr[-3000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr[-3000:]
    assert "MSFT" in lines[0] and "2022-12-28" in lines[0] and "nothing written" in lines[0], lines[0]
    assert _stored_bars(home) == 0
    # no run was started, so no session of the range is marked failed
    assert _failed_partitions_and_runs(home) == (0, 0)

    # the complete part of the range loads and is recorded, session by session
    process = _load_bars(home, path, "2022-12-01", "2022-12-27")
    assert process.returncode == 0, process.stderr[-3000:]
    # progress (issue 9 item 17): the run's recorded partitions, elapsed and rate, not silence
    assert (
        "raw_bars 2022-12-01...2022-12-27: bars written; 18/18 partitions recorded, checks 108/108, " in process.stdout
    ), process.stdout
    assert _stored_bars(home) == 3 * 18
    assert _failed_partitions_and_runs(home) == (0, 1)
