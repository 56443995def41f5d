"""Benchmark: a UI backfill of the whole ``daily_pairs`` group (raw_bars included) — launch time,
targeted partitions per asset, runs created.

Run: ``python pairs_assets_tests/benchmarks/bench_ui_backfill.py [--case 10x1] [--case 252x6]
[--timeout 180]``. Prints a table; asserts nothing.

Each case runs in a fresh child process (bounded by ``--timeout``; a case past it is reported as
``> timeout``) on a temporary PAIRS_HOME and a temporary Dagster instance whose runs are queued:

1. ``launchPartitionBackfill`` — the GraphQL mutation the webserver runs when a person selects the
   group → *Materialize all* → the last N sessions (ending 2022-12-28) × S sectors — timed
   (validation of the backfill included: Dagster's ``assert_valid_asset_partition_backfill``);
2. the partitions the backfill targets, per asset (``instance.get_backfill(id).asset_backfill_data``);
3. one iteration of the backfill daemon (timed): the runs it creates and their partition ranges.

``--execute``: the history before the range is written into the store first (not timed in the
daemon column), and the daemon's runs execute in this process, one after another, during its
iteration (the column is then the backfill's execution time); the table adds each run's status and
the materializations recorded per asset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
LAST = "2022-12-28"  # the embedded data's last session


def one_case(sessions: int, sectors: int, execute: bool = False) -> dict:
    os.environ["PAIRS_HOME"] = tempfile.mkdtemp(prefix="pairs_bench_ui_")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    sys.path.insert(0, str(ROOT))
    import dagster as dg

    from pairs_assets import partitions
    from pairs_assets.settings import paths
    from pairs_assets.universe import load_universe
    from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS
    from pairs_assets_tests.ui_backfill import (
        backfill_runs,
        launch_asset_backfill,
        run_backfill_daemon_once,
        targeted_partitions,
        ui_workspace,
    )

    p = paths()
    group = [a.key.to_user_string() for a in DAILY_ASSETS]
    chosen = load_universe(p.universe_file).sector_names[:sectors]
    dates = [str(d.date()) for d in partitions.sessions_in_range(p.history_start, LAST)[-sessions:]]
    keys = [f"{d}|{s}" for d in dates for s in chosen]
    preload_s = 0.0
    if execute:  # the history before the range in the store (the range's own sessions are raw_bars' work)
        from pairs_assets.settings import StrategySettings
        from pairs_assets_tests.assets.graph_harness import preload_history
        from resources.bar_sources import EmbeddedBarSource

        start = time.perf_counter()
        before = str(partitions.previous_session(dates[0]).date())
        uni = load_universe(p.universe_file)
        symbols = [sym for sector in chosen for sym in uni.symbols(sector)]
        preload_history(p.database_url, EmbeddedBarSource(), symbols, before, StrategySettings().history_sessions)
        preload_s = time.perf_counter() - start
    with ui_workspace(p, project_instance=True, execute_runs=execute) as context:
        print(
            f"STAGE instance {type(context.instance).__name__} / {type(context.instance.event_log_storage).__name__}",
            file=sys.stderr,
            flush=True,
        )
        print("STAGE launching the backfill (code location loaded)", file=sys.stderr, flush=True)
        launched = launch_asset_backfill(context, group, keys)
        print(f"STAGE launched in {launched.seconds:.1f} s", file=sys.stderr, flush=True)
        targeted = {asset: len(v) for asset, v in targeted_partitions(context.instance, launched.backfill_id).items()}
        start = time.perf_counter()
        errors = run_backfill_daemon_once(context)
        daemon = time.perf_counter() - start
        runs = backfill_runs(context.instance, launched.backfill_id)
        statuses = [context.instance.get_run_by_id(r.run_id).status.value for r in runs]
        materialized = {}
        if execute:
            for r in runs:
                records = context.instance.get_records_for_run(
                    r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
                for record in records:
                    asset = record.event_log_entry.asset_materialization.asset_key.to_user_string()
                    materialized[asset] = materialized.get(asset, 0) + 1
        return {
            "preload_s": round(preload_s, 1),
            "statuses": statuses,
            "materialized": materialized,
            "launch_s": round(launched.seconds, 2),
            "targeted": targeted,
            "daemon_s": round(daemon, 2),
            "runs": len(runs),
            "ranges": [
                f"{r.tags.get('dagster/asset_partition_range_start')}...{r.tags.get('dagster/asset_partition_range_end')}"
                for r in runs
            ],
            "daemon_errors": [str(e)[:300] for e in errors],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", action="append", help="SESSIONSxSECTORS (default: 10x1)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    parser.add_argument(
        "--execute",
        action="store_true",
        help="load the history first and execute the runs (in-process, one after another)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, s = map(int, args.child.split("x"))
        print("RESULT " + json.dumps(one_case(n, s, execute=args.execute)))
        return

    rows = []
    for case in args.case or ["10x1"]:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--child", case, *(["--execute"] if args.execute else [])],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired as stopped:
            err = stopped.stderr.decode() if isinstance(stopped.stderr, bytes) else (stopped.stderr or "")
            stages = [x[len("STAGE ") :] for x in err.splitlines() if x.startswith("STAGE ")]
            rows.append(
                (case, f"> {args.timeout:.0f} s (stopped while {stages[-1] if stages else 'loading'})", "-", "-", "-")
            )
            continue
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            rows.append(
                (
                    case,
                    f"failed after {time.perf_counter() - start:.0f} s: {done.stderr.strip().splitlines()[-1:]}",
                    "-",
                    "-",
                    "-",
                )
            )
            continue
        r = json.loads(lines[0][len("RESULT ") :])
        targeted = ", ".join(f"{a} {n}" for a, n in r["targeted"].items())
        runs = f"{r['runs']} ({'; '.join(r['ranges'])})" + (
            f" errors: {r['daemon_errors']}" if r["daemon_errors"] else ""
        )
        if args.execute:
            done = ", ".join(f"{a} {n}" for a, n in sorted(r["materialized"].items()))
            runs += (
                f"; executed: {', '.join(r['statuses'])}; materialized {done} (history preloaded in {r['preload_s']} s)"
            )
        rows.append((case, f"{r['launch_s']:.2f} s", targeted, f"{r['daemon_s']:.2f} s", runs))

    print("| sessions × sectors | GraphQL launch | targeted partitions per asset | daemon iteration | runs (range) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
