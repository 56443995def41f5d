"""Benchmark: would polars pay? Today's pandas path against polars where polars could replace it.

Issue 20 item 6 names two candidates:

1. **Parsing a user's bars file** (``resources.bar_sources.read_bars_file``): the embedded data as a
   long CSV bars file (20 symbols × 8,313 sessions = 166,260 rows, ISO-8601 UTC timestamps at each
   session's close) and a 10× generated file (200 symbols: each real symbol ×10, its closes scaled by
   a seeded random factor). Timed: the whole of today's ``read_bars_file`` (read, zone handling,
   row-level validation), its read step alone (``pd.read_csv``), and polars' ``read_csv`` plus the
   ``to_pandas()`` the rest of the path needs — the part polars could replace.
2. **Building the walk-forward's sector panels** (``pairs_assets.assets.common.read_panel``): the same
   bars upserted into a SQLite market data store, one panel of every symbol over 1995-01-03 →
   2022-12-28. Timed: the whole ``read_panel``, its store read (``MarketDataStore.read_bars``,
   pandas ``read_sql``) against polars' ``read_database`` on the same query, and its pivot
   (``session_closes``: the last close per session × symbol) against polars' ``group_by`` + ``pivot``
   (with the conversions from and back to pandas, since everything around it is pandas).

Prints one table (median of ``--repeat`` runs, seconds) and the load average; asserts nothing.
polars is no longer a dependency (dropped on these numbers: docs/benchmarks.md, "polars vs the
pandas path"); install it to rerun (``pip install polars``). Run from the repository root:

    .venv/bin/python pairs_assets_tests/benchmarks/bench_polars.py [--repeat 3] [--scale 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def embedded_long_bars() -> pd.DataFrame:
    """The embedded closes as bars stamped at each session's close (what ``EmbeddedBarSource`` loads)."""
    from pairs_assets.data import EMBEDDED_BARS_FILE
    from resources.bar_sources import EmbeddedBarSource

    wide = pd.read_csv(EMBEDDED_BARS_FILE, index_col=0, parse_dates=True)
    bars = EmbeddedBarSource().load_bars(
        list(wide.columns), pd.Timestamp("1990-01-01", tz="UTC"), pd.Timestamp("2023-01-01", tz="UTC")
    )
    return bars.reset_index(drop=True)


def scaled(bars: pd.DataFrame, scale: int, seed: int = 7) -> pd.DataFrame:
    """``scale`` copies of ``bars``, copy k's symbols suffixed ``Xk`` and its prices scaled by a seeded factor."""
    if scale == 1:
        return bars
    rng = np.random.default_rng(seed)
    copies = [bars]
    for k in range(1, scale):
        copy = bars.copy()
        copy["symbol"] = copy["symbol"] + f"X{k}"
        factor = rng.uniform(0.5, 2.0, size=copy["symbol"].nunique())
        by_symbol = dict(zip(sorted(copy["symbol"].unique()), factor))
        copy["close"] = copy["close"] * copy["symbol"].map(by_symbol)
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def write_bars_csv(bars: pd.DataFrame, path: Path) -> None:
    out = bars[["symbol", "timestamp", "open", "high", "low", "close", "volume"]].copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)


def bench_file(bars: pd.DataFrame, path: Path, repeat: int) -> list[tuple[str, str, float]]:
    import polars as pl

    from resources.bar_sources import read_bars_file

    write_bars_csv(bars, path)
    full, parsed = timed(lambda: read_bars_file(path), repeat)
    read_pandas, _ = timed(lambda: pd.read_csv(path), repeat)
    read_polars, _ = timed(lambda: pl.read_csv(path).to_pandas(), repeat)
    assert len(parsed) == len(bars)
    label = f"bars file, {len(bars):,} rows ({path.stat().st_size / 1e6:.0f} MB CSV)"
    return [
        (label, "read_bars_file (today: read + zones + validation)", full),
        (label, "  its read step: pandas read_csv", read_pandas),
        (label, "  polars read_csv + to_pandas", read_polars),
    ]


def bench_panel(bars: pd.DataFrame, home: Path, repeat: int) -> list[tuple[str, str, float]]:
    import polars as pl
    import sqlalchemy as sa

    from pairs_assets import partitions
    from pairs_assets.assets.common import read_panel, session_closes, session_of
    from resources.bars import BAR_COLUMNS
    from resources.market_data import MarketDataStore, bars_table

    store = MarketDataStore(database_url=f"sqlite:///{home / 'market_data.sqlite'}")
    store.upsert_bars(bars.assign(source="bench"), context="bench_polars")
    symbols = sorted(bars["symbol"].unique())
    sessions = pd.DatetimeIndex(partitions.sessions_in_range("1995-01-03", "2022-12-28"))
    start, end = partitions.sessions_span_utc(sessions[0], sessions[-1])

    full, panel = timed(lambda: read_panel(store, "bench", "all", symbols, sessions), repeat)
    read_pandas, stored = timed(lambda: store.read_bars(symbols, start, end, source="bench"), repeat)

    t = bars_table.c
    query = (
        sa.select(*[t[c] for c in BAR_COLUMNS])
        .where(
            t.symbol.in_(symbols),
            t.timestamp >= start.tz_convert("UTC").tz_localize(None),
            t.timestamp <= end.tz_convert("UTC").tz_localize(None),
            t.source == "bench",
        )
        .order_by(t.symbol, t.timestamp, t.source)
    )

    def pandas_read():
        with store.engine.connect() as conn:
            return pd.read_sql_query(query, conn)

    def polars_read():
        with store.engine.connect() as conn:
            return pl.read_database(query, conn)

    raw_pandas, frame_pd = timed(pandas_read, repeat)
    raw_polars, frame = timed(polars_read, repeat)
    assert frame.height == len(frame_pd) == len(stored)

    with_session = stored.assign(session=session_of(stored["timestamp"]))
    with_session = with_session[with_session["session"].isin(sessions)]
    pivot_pandas, closes = timed(lambda: session_closes(with_session, sessions, symbols), repeat)

    def polars_pivot():
        pl_bars = pl.from_pandas(with_session[["session", "symbol", "timestamp", "close"]])
        wide = (
            pl_bars.sort("timestamp")
            .group_by(["session", "symbol"], maintain_order=True)
            .agg(pl.col("close").last())
            .pivot(on="symbol", index="session", values="close")
            .to_pandas()
            .set_index("session")
        )
        return wide.reindex(index=sessions, columns=symbols)

    pivot_polars, closes_pl = timed(polars_pivot, repeat)
    assert np.allclose(closes.to_numpy(), closes_pl.to_numpy(), equal_nan=True), "polars pivot differs from pandas"
    assert panel.closes.shape == closes.shape
    label = f"sector panel, {len(symbols)} symbols × {len(sessions):,} sessions"
    return [
        (label, "read_panel (today: read + validate + pivot + hashes)", full),
        (label, "  its store read: MarketDataStore.read_bars", read_pandas),
        (label, "    of which the query: pandas read_sql_query", raw_pandas),
        (label, "    the same query: polars read_database", raw_polars),
        (label, "  its pivot: pandas session_closes", pivot_pandas),
        (label, "  polars group_by + pivot (+ conversions)", pivot_polars),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--scale", type=int, default=10, help="the generated file's size, in copies of the embedded data"
    )
    args = parser.parse_args()

    import polars as pl

    print(
        f"polars {pl.__version__}, pandas {pd.__version__}; median of {args.repeat}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'case':<48} {'path':<54} {'seconds':>8}", flush=True)
    embedded = embedded_long_bars()
    with tempfile.TemporaryDirectory(prefix="bench_polars_") as tmp:
        tmp = Path(tmp)
        for scale in (1, args.scale):
            bars = scaled(embedded, scale)
            home = tmp / f"home_{scale}"
            home.mkdir()
            for rows in (
                bench_file(bars, tmp / f"bars_{scale}.csv", args.repeat),
                bench_panel(bars, home, args.repeat),
            ):
                for case, path, seconds in rows:
                    print(f"{case:<48} {path:<54} {seconds:>8.3f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
