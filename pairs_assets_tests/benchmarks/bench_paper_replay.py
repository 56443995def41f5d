"""Benchmark: ``pairs paper-replay`` (the live path over history beside the walk-forward).

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_paper_replay.py [--start 2022-01-03] [--end 2022-12-28] [--sector S …]``

Replays the range for the sectors (default: one year × every sector of the embedded universe) in a
temporary home and prints one row per phase — bars loaded into the archive and the replay store,
the trading configs built and written, the stream (recycler → ingestion), the signal job runs (one
``trading_signals`` materialization per session and sector that lists a pair or holds one), the
walk-forward — with the counts behind each, the seconds per signal run, and the verdict. Asserts
nothing (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2022-01-03")
    parser.add_argument("--end", default="2022-12-28")
    parser.add_argument("--sector", action="append", default=[])
    args = parser.parse_args()

    from pairs_assets.paper_replay import paper_replay
    from pairs_assets.settings import StrategySettings, paths
    from pairs_assets.universe import load_universe

    universe = load_universe(paths().universe_file)
    with tempfile.TemporaryDirectory(prefix="bench-paper-replay-") as tmp:
        started = time.perf_counter()
        result = paper_replay(
            args.start,
            args.end,
            args.sector,
            universe=universe,
            home=Path(tmp) / "replay",
            history_start=paths().history_start,
            strategy=StrategySettings(),
            echo=lambda _line: None,
        )
        total = time.perf_counter() - started
    c, s = result.counts, result.seconds
    runs = max(1, c["signal_runs"])
    rows = [
        ("load bars (archive + history)", s["load"], f"{c['sectors']} sector(s)"),
        ("trading configs (build + write)", s["configs"], f"{c['sessions']} sessions x {c['sectors']} sector(s)"),
        ("stream (recycler -> ingestion)", s["stream"], f"{c['bars_streamed']} bars"),
        ("signal_job runs", s["signals"], f"{c['signal_runs']} runs, {1000 * s['signals'] / runs:.0f} ms/run"),
        ("walk-forward (cost 0, lag 0)", s["walk_forward"], f"{c['wf_trades']} trades"),
        ("total", round(total, 2), f"{c['orders']} orders, {c['trades']} round trips"),
    ]
    print(f"pairs paper-replay {args.start} -> {args.end}, sectors: {', '.join(args.sector) or 'all'}")
    print(f"{'phase':<34} {'seconds':>9}  counts")
    for name, seconds, note in rows:
        print(f"{name:<34} {seconds:>9.2f}  {note}")
    print(result.verdict)


if __name__ == "__main__":
    main()
