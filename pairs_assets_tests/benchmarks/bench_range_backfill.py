"""Benchmark: the daily graph over 252 sessions × 6 sectors through Dagster's own backfill.

Run: ``python pairs_assets_tests/benchmarks/bench_range_backfill.py [--sessions 252] [--sample 2]``.
Prints a table; asserts nothing.

Setup: a temporary PAIRS_HOME with a real Dagster instance (``pairs init``: SQLite, as a user has
it) and the embedded data's bars of every symbol, from the longest window before the range to
its last session, written straight into the market data store (raw_bars is not part of the
measurement: ``pairs load-bars`` is item 1 of the issue). The definitions' own strategy settings.

*before* — one run per partition (how a backfill ran before the daily assets had a backfill
policy: one run each): ``--sample`` sessions spread over the range × every sector, each one
in-process run of correlation_matrix → trading_config on the same instance (no process start
per run — the optimistic case), the mean extrapolated to every partition of the range.

*after* — the whole range in ONE run, with Dagster's CLI:
``dagster asset materialize -m pairs_assets.definitions --select <the six stage assets>
--partition-range 'FIRST|consumer...LAST|technology'`` in a fresh process (its start included),
then the instance is asked what it recorded (materializations and check evaluations per
partition) and the trading configs on disk are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(tempfile.mkdtemp(prefix="pairs_bench_range_"))
os.environ["PAIRS_HOME"] = str(HOME)
os.environ["DAGSTER_HOME"] = str(HOME / "dagster")
os.environ.pop("MLFLOW_TRACKING_URI", None)
sys.path.insert(0, str(ROOT))

STAGES = ["correlation_matrix", "cointegrated_pairs", "garch_models", "model_selection", "gru_models", "trading_config"]
LAST = "2022-12-28"  # the embedded data's last session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=252)
    parser.add_argument("--sample", type=int, default=2, help="sessions × every sector run one partition per run")
    parser.add_argument("--preset", default=None, help="strategy preset (default: the definitions' settings)")
    args = parser.parse_args()

    subprocess.run([sys.executable, "-m", "pairs_assets.cli", "init"], cwd=ROOT, check=True, capture_output=True)
    import dagster as dg

    from pairs_assets import partitions
    from pairs_assets.definitions import defs
    from pairs_assets.settings import StrategySettings, paths
    from pairs_assets.universe import load_universe
    from resources.market_data import MarketDataStore

    strategy = StrategySettings.preset(args.preset) if args.preset else StrategySettings()
    resources = {**defs.resources, "strategy": strategy}
    uni = load_universe(paths().universe_file)
    calendar = partitions.sessions_in_range(paths().history_start, LAST)
    sessions = calendar[-args.sessions :]
    first = str(sessions[0].date())
    start = calendar[max(0, len(calendar) - args.sessions - strategy.history_sessions - 5)]
    t0 = time.perf_counter()
    bars = defs.resources["bar_source"].load_bars(uni.all_symbols, *partitions.sessions_span_utc(start, LAST))
    store = MarketDataStore(database_url=paths().database_url)
    store.upsert_bars(bars, context="benchmark preload")
    print(
        f"preloaded {len(bars):,} bars ({start.date()} → {LAST}, {len(uni.all_symbols)} symbols) in {time.perf_counter() - t0:.1f} s"
    )
    n_partitions = len(sessions) * len(uni.sector_names)

    # before: one run per partition, a sample of sessions × every sector
    picks = [
        sessions[int(i)] for i in [round(k * (len(sessions) - 1) / max(1, args.sample - 1)) for k in range(args.sample)]
    ]
    job_assets = [a for a in defs.assets if a.key.to_user_string() in {"raw_bars", *STAGES}]
    walls = []
    with dg.DagsterInstance.get() as instance:
        for session in picks:
            for sector in uni.sector_names:
                t0 = time.perf_counter()
                result = dg.materialize(
                    job_assets,
                    selection=STAGES,
                    partition_key=f"{session.date()}|{sector}",
                    resources=resources,
                    instance=instance,
                    raise_on_error=False,
                )
                walls.append(time.perf_counter() - t0)
                if not result.success:
                    raise SystemExit(f"one-partition run {session.date()}|{sector} failed")
    for stage in STAGES:  # the range run starts from no output (and trains its GRUs afresh)
        shutil.rmtree(paths().outputs_dir / stage, ignore_errors=True)
    per_partition = statistics.mean(walls)

    # after: the whole range in one run, Dagster's CLI
    partition_range = f"{first}|{uni.sector_names[0]}...{LAST}|{uni.sector_names[-1]}"
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "pairs_assets.definitions",
        "--select",
        ",".join(STAGES),
        "--partition-range",
        partition_range,
    ]
    if args.preset:  # the preset's every field as the strategy resource's run config (as in the launchpad)
        command += [
            "--config-json",
            json.dumps({"resources": {"strategy": {"config": strategy.model_dump(mode="json")}}}),
        ]
    print("after:", " ".join(command[2:11]), "(+ the preset's run config)" if args.preset else "")
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        print(done.stderr[-4000:])
        raise SystemExit("the range run failed")

    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        materialized = {stage: len(instance.get_materialized_partitions(dg.AssetKey(stage))) for stage in STAGES}
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
        ).records
        step_seconds = {
            s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run.run_id)
        }
    configs = list((paths().outputs_dir / "trading_config").rglob("*.json"))
    with_pairs = sum(bool(json.loads(p.read_text())["pairs"]) for p in configs)
    import pandas as pd

    gru_rows = pd.concat([pd.read_parquet(p) for p in (paths().outputs_dir / "gru_models").rglob("*.parquet")])
    trained = gru_rows[gru_rows["status"] == "trained"]
    models = len(trained[["model_name", "model_version"]].drop_duplicates())

    print(
        f"\n{args.sessions} sessions ({first} → {LAST}) × {len(uni.sector_names)} sectors = {n_partitions} partitions; "
        f"strategy {args.preset or 'default'} (reselect_every {strategy.reselect_every}); {os.cpu_count()} CPUs\n"
    )
    print(f"{'path':<58} {'runs':>5} {'wall s':>9} {'min':>7}")
    print(
        f"{'before: one run per partition (mean of ' + str(len(walls)) + ', extrapolated)':<58} {n_partitions:>5} "
        f"{per_partition * n_partitions:>9.0f} {per_partition * n_partitions / 60:>7.1f}"
    )
    print(f"{'after: one single-run backfill (dagster CLI, process incl.)':<58} {1:>5} {wall:>9.0f} {wall / 60:>7.1f}")
    print(
        f"\none-partition runs: median {statistics.median(walls):.2f} s, mean {per_partition:.2f} s, max {max(walls):.2f} s"
    )
    print("range run steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in step_seconds.items()))
    print(f"materialized partitions per asset: {materialized}")
    print(f"check evaluations recorded (each with its partition): {len(records)}")
    print(
        f"trading configs written: {len(configs)} ({with_pairs} with a pair); GRU models trained and registered by the range run: {models} "
        f"({len(trained)} partition rows carry one: a trading period's partitions share its models)"
    )
    shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
