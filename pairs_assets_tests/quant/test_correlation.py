"""correlation_long against pandas on the embedded data, plus its shape contract."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant.correlation import CORRELATION_COLUMNS, correlation_long

DATASET = Path(__file__).resolve().parents[2] / "pairs_assets" / "data" / "sp500_dataset.csv.gz"


@lru_cache(maxsize=1)
def real_closes() -> pd.DataFrame:
    return pd.read_csv(DATASET, index_col="Date", parse_dates=True)


def test_matches_pandas_corr_on_real_windows():
    for window in (60, 250):
        closes = real_closes().iloc[-window:]
        long = correlation_long(closes)
        reference = np.log(closes).diff().iloc[1:].corr()
        assert list(long.columns) == CORRELATION_COLUMNS
        assert len(long) == 20 * 19 // 2
        for row in long.itertuples():
            assert row.symbol_a < row.symbol_b
            assert row.correlation == reference.loc[row.symbol_a, row.symbol_b]
        assert (long["n_obs"] == window - 1).all()
        assert long.equals(long.sort_values(["symbol_a", "symbol_b"]).reset_index(drop=True))


def test_column_order_does_not_matter():
    closes = real_closes().iloc[-100:, :6]
    pd.testing.assert_frame_equal(correlation_long(closes), correlation_long(closes[closes.columns[::-1]]))


def test_pairwise_complete_counts_with_missing_values():
    closes = real_closes().iloc[-50:, :3].copy()
    closes.iloc[10, 0] = np.nan  # removes two returns of the first symbol
    long = correlation_long(closes)
    first = closes.columns[0]
    assert set(long.loc[(long.symbol_a == first) | (long.symbol_b == first), "n_obs"]) == {47}
    assert set(long.loc[(long.symbol_a != first) & (long.symbol_b != first), "n_obs"]) == {49}


def test_fewer_than_two_symbols_gives_typed_empty_frame():
    empty = correlation_long(real_closes().iloc[-10:, :1])
    assert list(empty.columns) == CORRELATION_COLUMNS and empty.empty
    assert empty.dtypes.to_dict() == {
        "symbol_a": np.dtype(object),
        "symbol_b": np.dtype(object),
        "correlation": np.dtype("float64"),
        "n_obs": np.dtype("int64"),
    }


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_symbols=st.integers(2, 6), n_obs=st.integers(5, 80))
def test_correlations_are_bounded_and_complete(seed, n_symbols, n_obs):
    rng = np.random.default_rng(seed)
    prices = np.exp(np.cumsum(rng.normal(0, 0.01, (n_obs, n_symbols)), axis=0))
    closes = pd.DataFrame(
        prices, columns=[f"S{i}" for i in range(n_symbols)], index=pd.bdate_range("2021-01-01", periods=n_obs)
    )
    long = correlation_long(closes)
    assert len(long) == n_symbols * (n_symbols - 1) // 2
    assert ((long.correlation >= -1.0 - 1e-12) & (long.correlation <= 1.0 + 1e-12)).all()
