"""Pairwise return correlation in long form (the ``correlation_matrix`` data contract)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pairs_assets.quant.prices import log_returns

__all__ = ["CORRELATION_COLUMNS", "correlation_long", "empty_correlation_frame"]

CORRELATION_COLUMNS = ["symbol_a", "symbol_b", "correlation", "n_obs"]


def empty_correlation_frame() -> pd.DataFrame:
    """An empty :func:`correlation_long` frame.

    Returns
    -------
    pandas.DataFrame
        No rows; the contract's columns and dtypes.
    """
    return pd.DataFrame(
        {
            "symbol_a": pd.Series(dtype=object),
            "symbol_b": pd.Series(dtype=object),
            "correlation": pd.Series(dtype="float64"),
            "n_obs": pd.Series(dtype="int64"),
        }
    )


def correlation_long(closes: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of log returns for every unordered pair of symbols, in long form.

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions (sorted DatetimeIndex) × symbols, positive prices.

    Returns
    -------
    pandas.DataFrame
        Columns ``symbol_a, symbol_b, correlation, n_obs``; one row per unordered pair with
        ``symbol_a < symbol_b``, sorted by (symbol_a, symbol_b). ``n_obs`` is the number of return
        observations used (pairwise-complete with missing values). Fewer than 2 symbols give an
        empty frame with the same columns and dtypes.

    Notes
    -----
    The values are exactly ``pandas.DataFrame.corr(method="pearson")`` of the log returns (a series
    with zero variance gives NaN).

    References
    ----------
    Pearson product-moment correlation; pandas ``DataFrame.corr``.
    """
    returns = log_returns(closes)
    symbols = sorted(returns.columns, key=str)
    if len(symbols) < 2:
        return empty_correlation_frame()
    returns = returns[symbols]
    corr = returns.corr(method="pearson").to_numpy()
    present = returns.notna().to_numpy(dtype=np.int64)
    pair_counts = present.T @ present
    rows, cols = np.triu_indices(len(symbols), k=1)
    names = np.asarray(symbols, dtype=object)
    return pd.DataFrame(
        {
            "symbol_a": names[rows],
            "symbol_b": names[cols],
            "correlation": corr[rows, cols].astype("float64"),
            "n_obs": pair_counts[rows, cols].astype("int64"),
        }
    )
