"""A generated intraday bars file: the planted market's session closes, with hourly bars in between."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairs_assets import partitions
from pairs_assets_tests.planted import planted_closes


def intraday_bars_file(
    path,
    symbols=("AAPL", "AMD", "MSFT"),
    *,
    every_minutes: int = 60,
    n_sessions: int = 1400,
    noise: float = 0.002,
    seed: int = 11,
) -> str:
    """Write a CSV of bars every ``every_minutes`` from each session's open, the last one at the close
    (its close the planted market's session close: :func:`pairs_assets_tests.planted.planted_closes`,
    AAPL-MSFT cointegrated), the bars between on a log-price Brownian bridge from the previous close
    (``noise`` per step). Timestamps are UTC (``…Z``); returns the path."""
    closes = planted_closes(n_sessions=n_sessions)[list(symbols)]
    rng = np.random.default_rng(seed)
    rows = []
    previous = closes.iloc[0]
    for day, close in closes.iterrows():
        opens, ends = partitions.session_open_utc(day), partitions.session_close_utc(day)
        times = list(
            pd.date_range(
                opens + pd.Timedelta(minutes=every_minutes), ends, freq=f"{every_minutes}min", inclusive="left"
            )
        ) + [ends]
        k = len(times)
        for symbol in symbols:
            a, b = np.log(previous[symbol]), np.log(close[symbol])
            walk = np.cumsum(rng.normal(0.0, noise, k))
            bridge = walk - np.arange(1, k + 1) / k * walk[-1]  # 0 at the close
            logs = a + (b - a) * np.arange(1, k + 1) / k + bridge
            logs[-1] = b
            for t, value in zip(times, np.exp(logs)):
                rows.append((symbol, t.strftime("%Y-%m-%dT%H:%M:%SZ"), value, value, value, value, 10_000.0))
        previous = close
    frame = pd.DataFrame(rows, columns=["symbol", "timestamp", "open", "high", "low", "close", "volume"])
    frame.to_csv(path, index=False)
    return str(path)
