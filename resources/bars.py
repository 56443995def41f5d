"""The bars contract shared by every bar source, the market data store and the live stream.

Columns: ``symbol, timestamp (UTC), open, high, low, close, volume, trade_count, vwap, source``.
Unknown fields stay null, never invented. ``validate_bars`` is the one gate every write passes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pairs_assets.errors import BadBarsError

BAR_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume", "trade_count", "vwap", "source"]
PRICE_COLUMNS = ["open", "high", "low", "close", "vwap"]
NUMERIC_COLUMNS = ["open", "high", "low", "close", "volume", "trade_count", "vwap"]


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
    frame["symbol"] = frame["symbol"].astype(object)
    frame["source"] = frame["source"].astype(object)
    frame["timestamp"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame[BAR_COLUMNS]


def conform_bars(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return ``frame`` with exactly the contract's columns and dtypes (missing fields null)."""
    out = pd.DataFrame(index=frame.index)
    out["symbol"] = frame["symbol"].astype(str)
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    out["timestamp"] = ts.astype("datetime64[ns, UTC]")
    for column in NUMERIC_COLUMNS:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64") if column in frame else np.nan
    out["source"] = source
    return out[BAR_COLUMNS].reset_index(drop=True)


def validate_bars(bars: pd.DataFrame, *, context: str) -> pd.DataFrame:
    """Raise ``BadBarsError`` naming symbol and timestamp for duplicates or bad prices.

    ``context`` (a partition key or a file name) is prefixed to every message. Returns the bars
    sorted by (symbol, timestamp).
    """
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise BadBarsError(f"{context}: bars lack the field(s) {', '.join(missing)}")
    if bars["timestamp"].isna().any():
        row = bars[bars["timestamp"].isna()].iloc[0]
        raise BadBarsError(f"{context}: symbol {row['symbol']} has a bar without a timestamp")
    dup = bars.duplicated(["symbol", "timestamp", "source"], keep=False)
    if dup.any():
        row = bars[dup].sort_values(["symbol", "timestamp"]).iloc[0]
        raise BadBarsError(
            f"{context}: duplicated bar for symbol {row['symbol']} at {row['timestamp'].isoformat()} "
            f"({int(dup.sum())} duplicated rows in all)"
        )
    close = bars["close"].to_numpy(dtype="float64")
    bad_close = ~np.isfinite(close) | (close <= 0)
    if bad_close.any():
        row = bars[bad_close].iloc[0]
        raise BadBarsError(
            f"{context}: symbol {row['symbol']} has close={row['close']} at {row['timestamp'].isoformat()}; "
            "prices must be positive and finite"
        )
    for column in ["open", "high", "low", "vwap"]:
        values = bars[column].to_numpy(dtype="float64")
        known = ~np.isnan(values)
        bad = known & (~np.isfinite(values) | (values <= 0))
        if bad.any():
            row = bars[bad].iloc[0]
            raise BadBarsError(
                f"{context}: symbol {row['symbol']} has {column}={row[column]} at {row['timestamp'].isoformat()}; "
                "prices must be positive and finite (or null when unknown)"
            )
    volume = bars["volume"].to_numpy(dtype="float64")
    if (~np.isnan(volume) & ((volume < 0) | ~np.isfinite(volume))).any():
        row = bars[~np.isnan(volume) & ((volume < 0) | ~np.isfinite(volume))].iloc[0]
        raise BadBarsError(
            f"{context}: symbol {row['symbol']} has volume={row['volume']} at {row['timestamp'].isoformat()}"
        )
    return bars.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


def fingerprint_bars(bars: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex) of the bars' identity and prices, independent of row order."""
    ordered = bars.sort_values(["symbol", "timestamp", "source"], kind="stable")
    digest = hashlib.sha256()
    digest.update(
        pd.util.hash_pandas_object(
            ordered[["symbol", "timestamp", "source", "close"]].reset_index(drop=True), index=False
        )
        .to_numpy()
        .tobytes()
    )
    return digest.hexdigest()[:16]
