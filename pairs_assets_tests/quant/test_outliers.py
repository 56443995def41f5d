"""Robust jump detection and OHLC consistency (pairs_assets.quant.outliers) against references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.robust.scale import mad as statsmodels_mad

from pairs_assets.quant.outliers import MAD_TO_SIGMA, ohlc_violations, price_jumps, trailing_median_mad
from pairs_assets.settings import EMBEDDED_BARS_FILE


@pytest.fixture(scope="module")
def embedded_returns() -> pd.Series:
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col=0, parse_dates=True)["KO"].dropna()
    return np.log(closes).diff()


def test_trailing_median_and_mad_match_statsmodels_and_pandas(embedded_returns):
    r = embedded_returns.to_numpy()[:1500]
    window, min_periods = 60, 20
    median, scale = trailing_median_mad(r, window, min_periods)
    for t in (21, 59, 60, 61, 400, 1499):
        earlier = r[max(0, t - window) : t]
        earlier = earlier[~np.isnan(earlier)]
        assert median[t] == pytest.approx(np.median(earlier), abs=1e-15)
        # statsmodels: MAD / Φ⁻¹(3/4) about the median — the same σ-consistent scale
        assert scale[t] == pytest.approx(statsmodels_mad(earlier, center=np.median(earlier)), rel=1e-12)
    reference = pd.Series(r).rolling(window, min_periods=min_periods).median().shift(1).to_numpy()
    assert np.allclose(median[80:], reference[80:], equal_nan=True)
    assert np.isnan(median[:20]).all() and not np.isnan(median[21])  # r[0] is NaN: 20 returns by t=21
    assert MAD_TO_SIGMA == pytest.approx(1 / 0.6744897501960817)


def test_no_lookahead_a_later_spike_does_not_move_earlier_scores(embedded_returns):
    r = embedded_returns.to_numpy()[:300].copy()
    before = trailing_median_mad(r, 60, 20)
    r[250] = 5.0
    after = trailing_median_mad(r, 60, 20)
    for a, b in zip(before, after):
        assert np.array_equal(a[:251], b[:251], equal_nan=True)


def _bars(closes, symbol="KO"):
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": pd.date_range("2022-01-03", periods=len(closes), freq="B", tz="UTC"),
            "close": closes,
        }
    )


def test_price_jumps_flags_a_spike_and_a_price_above_the_maximum_but_not_real_volatility(embedded_returns):
    closes = np.exp(np.cumsum(np.nan_to_num(embedded_returns.to_numpy()[-300:]))) * 50.0
    kwargs = dict(window=60, z_max=10.0, min_abs_log_return=0.15, min_history=20, price_max=1e7)
    assert price_jumps(_bars(closes), **kwargs).empty  # Coca-Cola's last 300 sessions: no jump
    spiked = closes.copy()
    spiked[200] *= 1.6
    spiked[250] = 1e308
    found = price_jumps(_bars(spiked), **kwargs)
    assert list(found["reason"]) == ["jump", "jump", "above price_max", "jump"]  # in, back out, 1e308, back
    assert found["timestamp"].iloc[0] == _bars(spiked)["timestamp"].iloc[200]
    assert found["log_return"].iloc[0] == pytest.approx(np.log(spiked[200] / spiked[199]))
    assert found["robust_z"].iloc[0] > 10
    # only bars from check_from on are reported; earlier bars are history
    later = price_jumps(_bars(spiked), check_from=_bars(spiked)["timestamp"].iloc[240], **kwargs)
    assert list(later["reason"]) == ["above price_max", "jump"]
    # the floor: on a flat series (MAD 0) a 1 % tick is not a jump, a 20 % one is
    flat = np.r_[np.full(40, 10.0), 10.1, 10.1, 12.2]
    flagged = price_jumps(_bars(flat), **kwargs)
    assert list(flagged["close"]) == [12.2] and np.isinf(flagged["robust_z"].iloc[0])


def test_ohlc_violations_names_each_broken_relation_and_ignores_unknown_fields():
    bars = pd.DataFrame(
        {
            "symbol": ["A", "B", "C", "D", "E"],
            "timestamp": pd.Timestamp("2022-12-28T21:00Z"),
            "open": [10.0, 10.0, np.nan, 12.0, 10.0],
            "high": [11.0, 9.0, np.nan, 11.0, 11.0 * (1 + 1e-12)],
            "low": [9.0, 10.5, np.nan, 9.0, 9.0],
            "close": [10.5, 10.0, 10.0, 8.0, 11.0],
        }
    )
    found = ohlc_violations(bars)
    assert dict(zip(found["symbol"], found["problem"])) == {
        "B": "high < low, open > high, open < low, close > high, close < low",
        "D": "open > high, close < low",
    }


def test_with_too_little_history_an_absolute_rule_flags_a_3x_jump_and_a_1e_300_close():
    """Issue 21 item 8: before, the first ``min_history`` returns of a store were never scored —
    a 3× jump and a close of 1e-300 passed."""
    kwargs = dict(window=60, z_max=10.0, min_abs_log_return=0.15, min_history=20, price_max=1e7)
    closes = np.r_[50.0, 50.5, 151.5, 152.0, 1e-300, 150.0, 151.0, 60.0]
    found = price_jumps(_bars(closes), **kwargs, short_history_ratio_max=2.0, price_min=1e-4)
    assert list(found["close"]) == [151.5, 1e-300, 150.0, 60.0]
    assert list(found["reason"]) == [
        "jump (short history)",
        "below price_min",
        "jump (short history)",
        "jump (short history)",
    ]
    assert found["log_return"].iloc[0] == pytest.approx(np.log(3.0))
    assert np.isnan(found["robust_z"].iloc[0])  # no robust scale yet: the absolute rule decided
    # a 1.9× move in the first sessions is not flagged (the rule is 2× either way)
    assert price_jumps(_bars(np.r_[50.0, 95.0, 50.0]), **kwargs, short_history_ratio_max=2.0, price_min=1e-4).empty
    # the very first bar has no previous close: only the absolute price bounds can judge it
    first = price_jumps(_bars(np.r_[1e-300, 1.0]), **kwargs, short_history_ratio_max=2.0, price_min=1e-4)
    assert list(first["reason"]) == ["below price_min", "jump (short history)"]


def test_once_the_robust_scale_exists_the_absolute_rule_steps_aside():
    """A volatile series (±10 % a day): ×2.5 is within 10 robust σ, and the absolute rule does not
    override the scale it was only a stand-in for."""
    kwargs = dict(window=60, z_max=10.0, min_abs_log_return=0.15, min_history=20, price_max=1e7)
    returns = np.tile([0.1, -0.1], 20)
    closes = np.r_[50.0 * np.exp(np.cumsum(np.r_[0.0, returns])), 0.0]
    closes[-1] = closes[-2] * 2.5
    found = price_jumps(_bars(closes), **kwargs, short_history_ratio_max=2.0, price_min=1e-4)
    assert found.empty
