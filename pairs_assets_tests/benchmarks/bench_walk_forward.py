"""Benchmark: the walk-forward over 1995-01-03 → 2022-12-28, all sectors, default settings (``--gru``: with the GRU gate).

Loads the embedded bars into a temporary store, then times the replay (configs → trades →
execution at 4 costs → summaries) per sector and in total, and the peak memory of the process.
Prints a table (with the load average, the machine being shared); asserts nothing. ``--workers N``
replays sectors in N processes. ``--market factor``: instead of the embedded bars, a generated
sector-factor market of the same layout (same sessions, symbols and sectors; every pair of a sector
correlated ≈ 0.8, none cointegrated: :func:`pairs_assets_tests.synthetic.factor_market`, ``--seed``),
where most (pair, session)s reach ``correlation_min`` — the case where screening Engle-Granger on
every session instead of the formation sessions only cost most. The run's files (summary.csv,
trades, daily P&L) stay under ``$PAIRS_HOME/walk_forward/bench/``.

    .venv/bin/python pairs_assets_tests/benchmarks/bench_walk_forward.py [--start D] [--end D] [--workers 2] [--gru] [--preset seed] [--market factor --seed 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("PAIRS_HOME", tempfile.mkdtemp(prefix="bench_wf_"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="1995-01-03")
    parser.add_argument("--end", default="2022-12-28")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--gru", action="store_true", help="also train the GRUs and gate entries (default_gru)")
    parser.add_argument("--preset", default="default", choices=["default", "seed", "trading_period"])
    parser.add_argument("--market", default="embedded", choices=["embedded", "factor"])
    parser.add_argument("--seed", type=int, default=1, help="the factor market's seed")
    args = parser.parse_args()

    from pairs_assets.assets.raw_bars import load_sector_bars
    from pairs_assets.assets.walk_forward import panel_sessions, resolve_sectors, run_and_record
    from pairs_assets.definitions import home_resource_for
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings
    from pairs_assets.settings import StrategySettings, paths
    from resources.bar_sources import EmbeddedBarSource
    from resources.market_data import MarketDataStore

    settings = WalkForwardSettings(start=args.start, end=args.end, workers=args.workers, gru=args.gru)
    strategy = StrategySettings.preset(args.preset)
    source = EmbeddedBarSource()
    if args.market == "factor":
        import pandas as pd

        from pairs_assets_tests.synthetic import factor_market

        template = pd.read_csv(source._path(), index_col=0, parse_dates=True)
        sectors = {sector: list(symbols) for sector, symbols in home_resource_for(paths()).universe().sectors.items()}
        path = os.path.join(os.environ["PAIRS_HOME"], "factor_market.csv")
        factor_market(template, sectors, seed=args.seed).to_csv(path)
        source = EmbeddedBarSource(path=path)
    store = MarketDataStore(database_url=paths().database_url)
    t0 = time.perf_counter()
    home = home_resource_for(paths())
    sessions = list(panel_sessions(settings, strategy, home.history_start))
    for sector, symbols in resolve_sectors(settings, home.universe()).items():
        store.upsert_bars(load_sector_bars(source, sector, symbols, sessions), context=f"bench {sector}")
    load_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    cpu0 = sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    result, _files, _run, _fp = run_and_record(
        home=home,
        store=store,
        source=source.source_name,
        strategy=strategy,
        settings=settings,
        registry=None,
        name="bench",
        log=lambda message: None,
    )
    total = time.perf_counter() - t0
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage) - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    market = "embedded bars" if args.market == "embedded" else f"factor market seed {args.seed}"
    print(
        f"walk-forward {settings.start} → {settings.end}, {market}, preset {args.preset}, GRU gate {'on' if args.gru else 'off'}, "
        f"costs {settings.costs}, lag {settings.lag}, workers {settings.workers or os.cpu_count()}, cpus {os.cpu_count()}, load average {load}"
    )
    print(f"{'sector':<12} {'configs':>8} {'pair-days':>10} {'seconds':>8} {'GRUs trained':>13}")
    for sector in result.configs:
        trained = result.gru.get(sector, {}).get("trained", "-")
        print(
            f"{sector:<12} {result.configs[sector]:>8} {result.config_pairs[sector]:>10} "
            f"{result.seconds.get(sector, float('nan')):>8.1f} {trained:>13}"
        )
    print(f"{'load bars':<12} {'':>8} {'':>10} {load_seconds:>8.1f}")
    print(f"{'total run':<12} {sum(result.configs.values()):>8} {sum(result.config_pairs.values()):>10} {total:>8.1f}")
    print(f"CPU seconds of the run (this process and its workers; the wall time above depends on the load): {cpu:.1f}")
    print(f"peak RSS: this process {peak_mb:.0f} MB, largest worker {children_mb:.0f} MB")


if __name__ == "__main__":
    main()
