"""Benchmark: the paper_book asset for one year of one sector.

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_paper_book.py [--sector healthcare] [--year 2022]``

The sector's embedded closes (the year and the risk window before it) go into a temporary SQLite store;
every unordered pair of the sector trades through the dry-run broker's order rows, opening every 10
sessions and closing 6 sessions later (≈ 25 round trips per pair, both legs, ~$5,000 a leg at the day's
close), as the signal job records them. Then:

* ``mark_book`` — :func:`pairs_assets.quant.paper_book.mark_book` over the year (pure math);
* ``paper_book asset`` — ``dg.materialize`` of the asset for the year's last session (reads orders and
  bars, marks every session since the first fill, the three checks, the plot and files) on a temporary
  instance. No trading configs are stored, so the walk-forward replay of the parity check finds none
  (every held pair is reported): its cost is the stored configs' parse + replay, not measured here.

Peak memory: ``tracemalloc``'s peak of Python allocations during the step (numpy/pandas buffers are
included; matplotlib's C allocations are not). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the test helpers, when run as a script

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sector", default="healthcare")
    parser.add_argument("--year", type=int, default=2022)
    args = parser.parse_args()

    import dagster as dg

    from pairs_assets import partitions
    from pairs_assets.assets.paper_book import fills_from_orders, paper_book_asset
    from pairs_assets.home import PairsHome
    from pairs_assets.quant.paper_book import mark_book
    from pairs_assets.settings import StrategySettings
    from pairs_assets.universe import load_universe
    from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
    from resources.bar_sources import EmbeddedBarSource
    from resources.broker import BrokerResource
    from resources.market_data import MarketDataStore, orders_table

    symbols = list(load_universe(Path(partitions.__file__).parent / "data" / "universe.yaml").sectors[args.sector])
    sessions = partitions.sessions_in_range(f"{args.year}-01-01", f"{args.year}-12-31")
    sessions = sessions[sessions <= pd.Timestamp("2022-12-28")]
    last = sessions[-1]
    with tempfile.TemporaryDirectory(prefix="bench_paper_book_") as tmp:
        store = MarketDataStore(database_url=f"sqlite:///{tmp}/store.sqlite")
        bars = EmbeddedBarSource().load_bars(
            symbols, pd.Timestamp(f"{args.year - 1}-09-01", tz="UTC"), partitions.session_close_utc(last)
        )
        store.upsert_bars(bars, context="bench")
        closes = bars.assign(
            session=bars["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
        )
        closes = closes.pivot_table(index="session", columns="symbol", values="close")
        orders = []
        pairs = list(itertools.combinations(sorted(symbols), 2))
        for k, (y, x) in enumerate(pairs):
            pair_id = f"{y}-{x}"
            for start in range(k % 10, len(sessions) - 6, 10):
                for when, sign in ((sessions[start], 1.0), (sessions[start + 6], -1.0)):
                    bar = partitions.session_close_utc(when)
                    for leg, symbol, direction in (("y", y, sign), ("x", x, -sign)):
                        price = float(closes.at[when, symbol])
                        qty = round(5000.0 / float(closes.at[sessions[start], symbol]))
                        orders.append(
                            {
                                "client_order_id": f"pairs-{pair_id}-{leg}-{bar:%Y%m%dT%H%M%S}",
                                "submitted_at": bar.tz_localize(None),
                                "broker": "dry-run",
                                "pair_id": pair_id,
                                "leg": leg,
                                "symbol": symbol,
                                "side": "buy" if direction > 0 else "sell",
                                "qty": float(qty),
                                "reference_price": price,
                                "fill_price": price,
                                "status": "filled",
                                "request": json.dumps({"bar_timestamp": bar.isoformat(), "sector": args.sector}),
                            }
                        )
        store.upsert_rows(orders_table, orders)
        rows = []

        fills = fills_from_orders(store.read_table(orders_table), {}, partitions.session_close_utc(last))
        tracemalloc.start()
        t0 = time.perf_counter()
        marks = mark_book(fills, closes, sessions, 5.0)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(("mark_book (pure)", seconds, peak, len(marks.pairs)))

        asset = paper_book_asset(EMBEDDED_DAILY)
        home = PairsHome(home=tmp, outputs_dir=tmp, universe_file="unused", history_start="2017-01-03")
        with dg.instance_for_test() as instance:
            tracemalloc.start()
            t0 = time.perf_counter()
            result = dg.materialize(
                [asset],
                partition_key=str(last.date()),
                instance=instance,
                resources={"store": store, "broker": BrokerResource(), "home": home, "strategy": StrategySettings()},
            )
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            meta = result.asset_materializations_for_node("paper_book")[0].metadata
            rows.append(("paper_book asset (dg.materialize)", seconds, peak, len(marks.pairs)))

    print(
        f"paper book, sector {args.sector} ({len(symbols)} symbols, {len(pairs)} pairs), {sessions[0].date()} … {last.date()} "
        f"({len(sessions)} sessions), {len(orders)} orders; net P&L {meta['net_pnl'].value:,.0f}, "
        f"step elapsed {meta['elapsed_seconds'].value:.2f} s"
    )
    print(f"{'what':<36} {'seconds':>8} {'peak MB':>8} {'pair-session rows':>18}")
    for name, seconds, peak, n in rows:
        print(f"{name:<36} {seconds:>8.2f} {peak / 2**20:>8.1f} {n:>18,}")


if __name__ == "__main__":
    main()
