"""Price hygiene: unusable-series detection and log returns, on the embedded data and by hand."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant.prices import UnusableSeriesError, find_unusable_symbols, log_returns

DATASET = Path(__file__).resolve().parents[2] / "pairs_assets" / "data" / "sp500_dataset.csv.gz"


@lru_cache(maxsize=1)
def real_closes() -> pd.DataFrame:
    return pd.read_csv(DATASET, index_col="Date", parse_dates=True)


def small_frame(**columns) -> pd.DataFrame:
    length = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.bdate_range("2020-01-01", periods=length))


def test_rrc_is_stale_in_1990():
    window = real_closes().iloc[:252]
    reasons = find_unusable_symbols(window, max_flat_fraction=0.2)
    assert "RRC" in reasons
    assert reasons["RRC"].startswith("stale:")
    assert "max_flat_fraction 0.2" in reasons["RRC"]
    assert list(reasons) == sorted(reasons)


def test_rrc_is_constant_then_stale_at_the_start():
    # RRC sits at 3.322 for its first 69 sessions, then moves on only 13 of the next ~70
    # (with jumps like 3.322 -> 1.107): constant first, stale over the first 127 sessions.
    closes = real_closes()[["RRC", "KO"]]
    assert find_unusable_symbols(closes.iloc[:69]) == {"RRC": "constant at 3.322 over the window"}
    reasons = find_unusable_symbols(closes.iloc[:127])
    assert list(reasons) == ["RRC"] and reasons["RRC"].startswith("stale: 89.7%")


def test_recent_real_window_is_clean():
    assert find_unusable_symbols(real_closes().iloc[-250:], max_flat_fraction=0.2) == {}


def test_missing_non_positive_infinite_and_constant_are_reported():
    closes = small_frame(
        A=[1.0, 2.0, np.nan, 3.0, 2.5],
        B=[1.0, -1.0, 2.0, 3.0, 2.0],
        C=[1.0, 2.0, np.inf, 3.0, 2.0],
        D=[5.0, 5.0, 5.0, 5.0, 5.0],
        E=[1.0, 1.1, 1.2, 1.1, 1.3],
    )
    reasons = find_unusable_symbols(closes)
    assert list(reasons) == ["A", "B", "C", "D"]
    assert "1 missing value(s) of 5, first on 2020-01-03" in reasons["A"]
    assert "non-positive or non-finite" in reasons["B"] and "2020-01-02" in reasons["B"]
    assert "non-positive or non-finite" in reasons["C"]
    assert reasons["D"] == "constant at 5 over the window"


def test_flat_fraction_threshold_is_the_callers():
    closes = small_frame(A=[1.0, 1.0, 1.1, 1.2, 1.3])  # 1 of 4 returns is zero
    assert find_unusable_symbols(closes, max_flat_fraction=0.25) == {}
    assert "stale: 25.0%" in find_unusable_symbols(closes, max_flat_fraction=0.2)["A"]


def test_single_session_makes_everything_unusable():
    reasons = find_unusable_symbols(small_frame(B=[1.0], A=[2.0]))
    assert list(reasons) == ["A", "B"]
    assert "at least 2" in reasons["A"]


def test_bad_frames_raise_naming_the_problem():
    closes = small_frame(A=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sorted"):
        find_unusable_symbols(closes.iloc[::-1])
    with pytest.raises(TypeError, match="'A'"):
        find_unusable_symbols(closes.astype({"A": str}))
    with pytest.raises(TypeError, match="DatetimeIndex"):
        find_unusable_symbols(closes.reset_index(drop=True))
    with pytest.raises(ValueError, match="max_flat_fraction"):
        find_unusable_symbols(closes, max_flat_fraction=1.5)


def test_log_returns_drop_first_row_and_match_numpy():
    closes = real_closes().iloc[-30:]
    returns = log_returns(closes)
    assert returns.index.equals(closes.index[1:])
    np.testing.assert_allclose(returns.to_numpy(), np.diff(np.log(closes.to_numpy()), axis=0), rtol=0, atol=1e-15)


def test_log_returns_name_the_bad_symbol():
    with pytest.raises(UnusableSeriesError, match="ZED"):
        log_returns(small_frame(A=[1.0, 2.0, 3.0], ZED=[1.0, 0.0, 2.0]))
