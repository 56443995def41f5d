"""Price-panel hygiene: which series are usable, and log returns.

A *closes* frame is sessions (a sorted, unique ``DatetimeIndex``) × symbols (unique column names),
holding adjusted closing prices. Everything downstream (correlation, cointegration, GARCH) assumes
the series it receives passed :func:`find_unusable_symbols`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError, PairsError
from pairs_assets.quant.strategy import DEFAULT_STRATEGY

__all__ = [
    "InsufficientHistoryError",
    "UnusableSeriesError",
    "find_unusable_symbols",
    "log_returns",
    "validate_closes",
]


class UnusableSeriesError(PairsError, ValueError):
    """A price series cannot be used (missing, non-positive, constant or stale values)."""


def validate_closes(closes: pd.DataFrame, name: str = "closes") -> None:
    """Check the shape contract of a closes frame (not its values).

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions × symbols.
    name : str, default "closes"
        How the frame is called in error messages.

    Raises
    ------
    TypeError
        Not a DataFrame with a DatetimeIndex, or a column is not numeric.
    ValueError
        The index is unsorted or duplicated, or column names repeat.
    """
    if not isinstance(closes, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(closes).__name__}")
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise TypeError(f"{name}.index must be a DatetimeIndex, got {type(closes.index).__name__}")
    if not closes.index.is_monotonic_increasing:
        raise ValueError(f"{name}.index must be sorted ascending")
    if closes.index.has_duplicates:
        dupes = closes.index[closes.index.duplicated()].unique()
        raise ValueError(f"{name}.index has duplicated sessions: {list(dupes[:5])}")
    if closes.columns.has_duplicates:
        dupes = sorted(map(str, closes.columns[closes.columns.duplicated()].unique()))
        raise ValueError(f"{name} has duplicated symbols: {dupes}")
    for symbol in closes.columns:
        if not pd.api.types.is_numeric_dtype(closes[symbol]):
            raise TypeError(f"{name}[{symbol!r}] must be numeric, got dtype {closes[symbol].dtype}")


def _first_date(index: pd.DatetimeIndex, mask: np.ndarray) -> str:
    return index[np.argmax(mask)].date().isoformat()


def find_unusable_symbols(
    closes: pd.DataFrame, max_flat_fraction: float = DEFAULT_STRATEGY.max_flat_fraction
) -> dict[str, str]:
    """Symbols whose close series cannot be used over this window, with a human reason.

    A series is unusable when it has missing (NaN) values, non-positive or non-finite values, is
    constant over the window, or is stale: more than ``max_flat_fraction`` of its log returns are
    zero (a stale or tick-size-quantised price makes spreads and correlations meaningless).

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions (sorted DatetimeIndex) × symbols, adjusted closes.
    max_flat_fraction : float, default 0.2
        The largest tolerated fraction of zero log returns.

    Returns
    -------
    dict of str to str
        ``{symbol: reason}`` sorted by symbol; several reasons joined with ``"; "``, a constant
        series reported as constant only. Symbols not in the dict are usable; a window with fewer
        than 2 sessions makes every symbol unusable.
    """
    validate_closes(closes)
    if not 0.0 <= max_flat_fraction <= 1.0:
        raise ValueError(f"max_flat_fraction must be in [0, 1], got {max_flat_fraction}")
    n_sessions = len(closes)
    reasons: dict[str, str] = {}
    for symbol in sorted(closes.columns, key=str):
        values = closes[symbol].to_numpy(dtype=float)
        if n_sessions < 2:
            reasons[symbol] = f"only {n_sessions} session(s) in the window; at least 2 are needed"
            continue
        problems: list[str] = []
        missing = np.isnan(values)
        if missing.any():
            problems.append(
                f"{int(missing.sum())} missing value(s) of {n_sessions}, first on {_first_date(closes.index, missing)}"
            )
        bad = ~missing & (~np.isfinite(values) | (values <= 0.0))
        if bad.any():
            problems.append(
                f"{int(bad.sum())} non-positive or non-finite close(s), first on {_first_date(closes.index, bad)}"
            )
        good = values[~missing & ~bad]
        if good.size >= 2 and np.all(good == good[0]):
            problems.append(f"constant at {good[0]:g} over the window")
        elif not problems:
            flat = float(np.mean(np.diff(np.log(values)) == 0.0))
            if flat > max_flat_fraction:
                problems.append(f"stale: {flat:.1%} of log returns are zero (max_flat_fraction {max_flat_fraction:g})")
        if problems:
            reasons[symbol] = "; ".join(problems)
    return reasons


def log_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Log returns ``ln(P_t / P_{t-1})`` of every column; the first session is dropped.

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions × symbols (sorted DatetimeIndex), positive prices (NaN allowed and propagated).

    Returns
    -------
    pandas.DataFrame
        The same columns, ``len(closes) - 1`` rows.

    Raises
    ------
    UnusableSeriesError
        Naming the symbols with non-positive or infinite prices.
    """
    validate_closes(closes)
    values = closes.to_numpy(dtype=float)
    invalid = ~np.isnan(values) & (~np.isfinite(values) | (values <= 0.0))
    if invalid.any():
        symbols = sorted(str(s) for s in closes.columns[invalid.any(axis=0)])
        raise UnusableSeriesError(f"log returns need positive finite closes; invalid values in: {', '.join(symbols)}")
    return np.log(closes.astype(float)).diff().iloc[1:]
