"""Walk-forward metrics: deflated and probabilistic Sharpe against the paper and scipy, summaries
checked by hand, sub-periods, and empty or flat inputs."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis, norm, skew

from pairs_assets.quant.walkforward.execution import empty_trades
from pairs_assets.quant.walkforward.metrics import (
    DEFAULT_PERIODS,
    SUMMARY_KEYS,
    by_period,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_estimator_variance,
    summarize,
)


def test_deflated_sharpe_reproduces_the_papers_example():
    # Bailey & López de Prado (2014), section "A numerical example": 5 years of daily returns
    # (T = 1250), annualised SR 2.5, N = 100 trials whose annualised Sharpe ratios have variance
    # 1/2, skewness −3, kurtosis 10. The paper reports SR* ≈ 0.1132 (per day) and DSR ≈ 0.9004.
    sharpe = 2.5 / math.sqrt(250)
    variance = 0.5 / 250
    assert expected_maximum_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sharpe, 1250, -3.0, 10.0, n_trials=100, sharpe_variance=variance) == pytest.approx(
        0.9004, abs=5e-5
    )


def test_deflated_sharpe_by_hand():
    sharpe, n_obs, skewness, kurt, n_trials, variance = 0.08, 2000, -0.4, 6.5, 25, 0.0009
    gamma = 0.5772156649015329
    # expected maximum Sharpe of 25 skill-less trials: √V·((1−γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))
    z1 = norm.ppf(1 - 1 / 25)  # 1.7507
    z2 = norm.ppf(1 - 1 / (25 * math.e))  # 2.1777 (1 − 1/(25e) = 0.985285)
    benchmark = 0.03 * ((1 - gamma) * z1 + gamma * z2)
    assert expected_maximum_sharpe(n_trials, variance) == pytest.approx(benchmark, rel=1e-12)
    assert benchmark == pytest.approx(0.03 * (0.4228 * 1.7507 + 0.5772 * 2.1777), abs=1e-4)
    denominator = math.sqrt((1 + 0.4 * 0.08 + (6.5 - 1) / 4 * 0.08**2) / 1999)
    expected = norm.cdf((0.08 - benchmark) / denominator)
    assert deflated_sharpe_ratio(sharpe, n_obs, skewness, kurt, n_trials, variance) == pytest.approx(
        expected, rel=1e-12
    )
    # the default V is the estimator's own variance, the PSR's squared denominator
    default = sharpe_estimator_variance(sharpe, n_obs, skewness, kurt)
    assert default == pytest.approx(denominator**2, rel=1e-12)
    assert deflated_sharpe_ratio(sharpe, n_obs, skewness, kurt, n_trials) == pytest.approx(
        norm.cdf((0.08 - math.sqrt(default) * ((1 - gamma) * z1 + gamma * z2)) / denominator), rel=1e-12
    )


def test_probabilistic_sharpe_against_scipy_normal_cdf():
    for sharpe, benchmark, n_obs, skewness, kurt in [
        (0.1, 0.0, 500, 0.0, 3.0),
        (0.05, 0.02, 252, -1.2, 9.0),
        (-0.03, 0.0, 1000, 0.5, 4.0),
    ]:
        statistic = (
            (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(1 - skewness * sharpe + (kurt - 1) / 4 * sharpe**2)
        )
        assert probabilistic_sharpe_ratio(sharpe, benchmark, n_obs, skewness, kurt) == pytest.approx(
            norm.cdf(statistic), rel=1e-12
        )
    assert math.isnan(probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0))


def test_more_trials_deflate_more_and_one_trial_is_the_psr():
    values = [deflated_sharpe_ratio(0.06, 1500, 0.0, 3.0, n) for n in (1, 2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert values[0] == pytest.approx(probabilistic_sharpe_ratio(0.06, 0.0, 1500, 0.0, 3.0))
    assert expected_maximum_sharpe(1, 0.5) == 0.0
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_trials must be an integer >= 1"):
            expected_maximum_sharpe(bad, 0.01)


def hand_case():
    sessions = pd.bdate_range("2005-12-28", periods=6)  # Wed 28 Dec 2005 .. Wed 4 Jan 2006
    daily = pd.DataFrame(
        {
            "pnl": [0.01, -0.02, 0.005, -0.01, 0.03, 0.0],
            "turnover": [0.4, 0.0, 0.2, 0.0, 0.4, 0.0],
            "n_positions": [1, 1, 0, 1, 2, 0],
        },
        index=sessions,
    )
    trades = pd.DataFrame(
        {
            "pnl": [0.012, -0.004, 0.02],
            "holding": [2, 1, 3],
            "entry_exec": pd.to_datetime(["2005-12-28", "2005-12-30", "2006-01-03"]),
        }
    )
    return daily, trades


def test_summary_by_hand():
    daily, trades = hand_case()
    summary = summarize(daily, trades, n_trials=3)
    assert list(summary) == SUMMARY_KEYS
    pnl = np.array([0.01, -0.02, 0.005, -0.01, 0.03, 0.0])
    mean = 0.015 / 6  # 0.0025
    std = math.sqrt(sum((v - mean) ** 2 for v in pnl) / 5)
    assert summary["ann_return"] == pytest.approx(0.0025 * 252, rel=1e-12)
    assert summary["ann_vol"] == pytest.approx(std * math.sqrt(252), rel=1e-12)
    assert summary["sharpe"] == pytest.approx(mean / std * math.sqrt(252), rel=1e-12)
    # cumulative P&L 0.01, −0.01, −0.005, −0.015, 0.015, 0.015: peak 0.01 → trough −0.015
    assert summary["max_drawdown"] == pytest.approx(0.025, abs=1e-15)
    assert summary["trades"] == 3
    assert summary["avg_holding"] == pytest.approx(2.0)
    assert summary["hit_rate"] == pytest.approx(2 / 3)
    assert summary["turnover"] == pytest.approx(1.0 / 6 * 252)
    assert summary["exposure"] == pytest.approx(4 / 6)
    trade_mean, trade_std = 0.028 / 3, np.std([0.012, -0.004, 0.02], ddof=1)
    assert summary["t_stat"] == pytest.approx(trade_mean / (trade_std / math.sqrt(3)), rel=1e-12)
    expected_dsr = deflated_sharpe_ratio(mean / std, 6, skew(pnl), kurtosis(pnl, fisher=False), n_trials=3)
    assert summary["deflated_sharpe"] == pytest.approx(expected_dsr, rel=1e-12)
    assert 0.0 < summary["deflated_sharpe"] < 1.0


def test_a_drawdown_from_the_start_counts_from_zero():
    daily = pd.DataFrame(
        {"pnl": [-0.01, -0.02, 0.005], "turnover": 0.0, "n_positions": 1}, index=pd.bdate_range("2020-01-01", periods=3)
    )
    assert summarize(daily, empty_trades(executed=True))["max_drawdown"] == pytest.approx(0.03)


def test_empty_and_flat_inputs_give_nan_not_errors():
    daily, trades = hand_case()
    no_trades = summarize(daily, empty_trades(executed=True))
    assert no_trades["trades"] == 0
    assert all(math.isnan(no_trades[key]) for key in ("avg_holding", "hit_rate", "t_stat"))
    flat = summarize(daily.assign(pnl=0.0), trades.iloc[:1])
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["deflated_sharpe"]) and math.isnan(flat["t_stat"])
    assert flat["ann_return"] == 0.0 and flat["max_drawdown"] == 0.0
    empty = summarize(daily.iloc[:0], empty_trades(executed=True))
    assert empty["trades"] == 0
    assert all(math.isnan(empty[key]) for key in SUMMARY_KEYS if key != "trades")
    one_day = summarize(daily.iloc[:1], trades.iloc[:1])
    assert math.isnan(one_day["sharpe"]) and one_day["ann_return"] == pytest.approx(0.01 * 252)


def test_by_period_splits_days_by_date_and_trades_by_entry_execution():
    daily, trades = hand_case()
    periods = [
        ("2005", "2005-01-01", "2005-12-31"),
        ("2006", "2006-01-01", "2006-12-31"),
        ("2030", "2030-01-01", "2030-12-31"),
    ]
    result = by_period(daily, trades, periods, n_trials=2)
    assert list(result) == ["2005", "2006", "2030"]
    assert result["2005"] == pytest.approx(summarize(daily.iloc[:3], trades.iloc[:2], n_trials=2), nan_ok=True)
    assert result["2006"] == pytest.approx(summarize(daily.iloc[3:], trades.iloc[2:], n_trials=2), nan_ok=True)
    assert result["2005"]["trades"] == 2 and result["2006"]["trades"] == 1
    assert result["2030"]["trades"] == 0 and math.isnan(result["2030"]["sharpe"])


def test_default_periods_and_bad_periods():
    assert [label for label, _, _ in DEFAULT_PERIODS] == ["1995-2005", "2006-2015", "2016-2022"]
    daily, trades = hand_case()
    assert list(by_period(daily, trades)) == ["1995-2005", "2006-2015", "2016-2022"]
    with pytest.raises(ValueError, match="start 2007-01-01 is after end 2006-01-01"):
        by_period(daily, trades, [("bad", "2007-01-01", "2006-01-01")])
    with pytest.raises(ValueError, match="period labels must be unique"):
        by_period(daily, trades, [("a", "2005-01-01", "2005-12-31"), ("a", "2006-01-01", "2006-12-31")])
    with pytest.raises(ValueError, match=r"trades is missing column\(s\): \['entry_exec'\]"):
        by_period(daily, trades.drop(columns="entry_exec"))


def test_bad_inputs_are_rejected_naming_the_field():
    daily, trades = hand_case()
    with pytest.raises(ValueError, match=r"daily is missing column\(s\): \['turnover'\]"):
        summarize(daily.drop(columns="turnover"), trades)
    with pytest.raises(ValueError, match="daily pnl contains NaN"):
        summarize(daily.assign(pnl=[0.0, math.nan, 0, 0, 0, 0]), trades)
    with pytest.raises(ValueError, match="periods_per_year must be a positive number"):
        summarize(daily, trades, periods_per_year=0)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 1"):
        summarize(daily, trades, n_trials=0)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 1"):
        summarize(daily.assign(pnl=0.0), trades, n_trials=0)


def test_psr_everywhere_and_the_dsr_only_where_selection_happened():
    daily, trades = hand_case()
    selected = summarize(daily, trades, n_trials=3)
    held_out = summarize(daily, trades, n_trials=3, selected=False)
    pnl = daily["pnl"].to_numpy()
    psr = probabilistic_sharpe_ratio(pnl.mean() / pnl.std(ddof=1), 0.0, 6, skew(pnl), kurtosis(pnl, fisher=False))
    assert selected["psr"] == pytest.approx(psr, rel=1e-12) and held_out["psr"] == pytest.approx(psr, rel=1e-12)
    assert math.isnan(held_out["deflated_sharpe"]) and selected["deflated_sharpe"] < selected["psr"]
    assert held_out["sharpe_low"] < held_out["sharpe_high"]
    assert {k: v for k, v in held_out.items() if k != "deflated_sharpe"} == pytest.approx(
        {k: v for k, v in selected.items() if k != "deflated_sharpe"}, nan_ok=True
    )
