"""A synthetic bars file on real NYSE sessions with planted cointegrated pairs, for graph tests.

technology: AAPL = a + b·MSFT + s with s an AR(1) spread driven by GARCH(1,1) shocks (so GARCH,
the scores and the GRU have something real to find); AMD an independent random walk.
consumer: KO/PEP planted the same way; BBY, HD, PG, WMT independent random walks.
The other sectors' symbols are independent random walks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairs_assets import partitions
from pairs_assets_tests.synthetic import garch_innovations

PLANTED = {"technology": ("AAPL", "MSFT"), "consumer": ("KO", "PEP")}
ALL_SYMBOLS = [
    "AAPL",
    "AMD",
    "MSFT",
    "BAC",
    "JPM",
    "JNJ",
    "LLY",
    "MRK",
    "PFE",
    "UNH",
    "CVX",
    "RRC",
    "XOM",
    "BBY",
    "HD",
    "KO",
    "PEP",
    "PG",
    "WMT",
    "GE",
]


def planted_closes(as_of: str = "2022-12-28", n_sessions: int = 1400, seed: int = 7, phi: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = partitions.window_sessions(as_of, n_sessions, history_start="1990-01-02")  # the embedded history
    logs = {}
    for symbol in ALL_SYMBOLS:
        logs[symbol] = np.log(50.0) + np.cumsum(garch_innovations(rng, n_sessions, (4e-6, 0.08, 0.9)))
    for y, x in PLANTED.values():
        shocks = garch_innovations(rng, n_sessions, (2e-7, 0.15, 0.8))
        spread = np.zeros(n_sessions)
        for t in range(1, n_sessions):
            spread[t] = phi * spread[t - 1] + shocks[t]
        logs[y] = 0.2 + 0.9 * logs[x] + spread
    return pd.DataFrame(np.exp(np.column_stack([logs[s] for s in ALL_SYMBOLS])), index=sessions, columns=ALL_SYMBOLS)


def write_bars_file(path, closes: pd.DataFrame) -> str:
    long = (
        closes.rename_axis("timestamp").reset_index().melt(id_vars="timestamp", var_name="symbol", value_name="close")
    )
    long["timestamp"] = long["timestamp"].dt.strftime("%Y-%m-%d")
    long["open"] = long["close"]
    long["high"] = long["close"] * 1.001
    long["low"] = long["close"] * 0.999
    long["volume"] = 1_000_000.0
    long[["symbol", "timestamp", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return str(path)
