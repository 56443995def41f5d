import math

import pytest

from pairs_assets.quant.sizing import pair_sizing

LIMITS = {"target_daily_vol": 0.01, "max_position": 0.10, "max_portfolio_risk": 0.05}


def test_volatility_target_sets_the_y_leg_and_the_hedge_sets_the_x_leg():
    s = pair_sizing(sigma_forecast=0.2, hedge_ratio=0.5, n_pairs=1, **LIMITS)
    assert s["y_fraction"] == pytest.approx(0.05) and s["x_fraction"] == pytest.approx(0.025)
    assert s["expected_daily_vol"] == pytest.approx(0.01) and s["gross_fraction"] == pytest.approx(0.075)


def test_position_limit_scales_both_legs_and_keeps_the_hedge():
    s = pair_sizing(sigma_forecast=0.01, hedge_ratio=2.0, n_pairs=1, **LIMITS)
    assert max(s["y_fraction"], s["x_fraction"]) == pytest.approx(0.10)
    assert s["x_fraction"] / s["y_fraction"] == pytest.approx(2.0)


def test_portfolio_risk_budget_is_shared_across_pairs():
    s = pair_sizing(sigma_forecast=1.0, hedge_ratio=1.0, n_pairs=10, **LIMITS)
    assert s["pair_vol_target"] == pytest.approx(0.005) and s["expected_daily_vol"] * 10 <= 0.05 + 1e-12


def test_unusable_sigma_gives_no_position_and_bad_limits_are_named():
    assert pair_sizing(sigma_forecast=math.nan, hedge_ratio=1.0, n_pairs=1, **LIMITS)["gross_fraction"] == 0.0
    with pytest.raises(ValueError, match="max_position"):
        pair_sizing(
            sigma_forecast=0.01,
            hedge_ratio=1.0,
            n_pairs=1,
            target_daily_vol=0.01,
            max_position=0.0,
            max_portfolio_risk=0.05,
        )
    with pytest.raises(ValueError, match="n_pairs"):
        pair_sizing(sigma_forecast=0.01, hedge_ratio=1.0, n_pairs=0, **LIMITS)


def test_the_default_volatility_target_is_what_a_planted_pair_position_delivers():
    """Realised daily P&L volatility of a held position within 30% of the default target (issue 8 item 4).

    The spread's daily changes have σ ≈ 1% (typical of the real pairs); the y leg is target/σ of
    equity, the x leg |β| times that, held as shares. The seed's 1% target cannot be delivered inside
    the 10% position limit (it delivers ~0.1%), so the test fails on it.
    """
    import numpy as np
    import pandas as pd

    from pairs_assets.quant.garch import fit_garch
    from pairs_assets.quant.walkforward.execution import TRADE_COLUMNS, execute
    from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
    from pairs_assets_tests.synthetic import garch_innovations

    rng = np.random.default_rng(5)
    n, beta = 1500, 0.9
    sessions = pd.bdate_range("2010-01-04", periods=n)
    log_x = np.log(40.0) + np.cumsum(rng.normal(0, 0.012, n))
    shocks = garch_innovations(rng, n, (5e-6, 0.08, 0.87))  # σ∞ = 1%
    spread = np.zeros(n)
    for t in range(1, n):
        spread[t] = 0.95 * spread[t - 1] + shocks[t]
    log_y = 0.1 + beta * log_x + spread
    closes = pd.DataFrame({"Y": np.exp(log_y), "X": np.exp(log_x)}, index=sessions)
    fit = fit_garch(np.diff(log_y[:1000] - beta * log_x[:1000]), holdout=250)
    for strategy, deliverable in ((DEFAULT_STRATEGY, True), (StrategySettings.preset("seed"), False)):
        sizing = pair_sizing(
            sigma_forecast=fit.sigma_forecast,
            hedge_ratio=beta,
            target_daily_vol=strategy.target_daily_vol,
            max_position=strategy.max_position,
            max_portfolio_risk=strategy.max_portfolio_risk,
            n_pairs=1,
        )
        trade = pd.DataFrame(
            [
                [
                    "s",
                    "t",
                    "Y-X",
                    "Y",
                    "X",
                    1,
                    sizing["y_fraction"],
                    -sizing["x_fraction"],
                    sessions[1000],
                    pd.NaT,
                    2.0,
                    math.nan,
                    "range_end",
                ]
            ],
            columns=TRADE_COLUMNS,
        )
        daily = execute(trade, closes, sessions[1000:], lag=0).daily
        realised = float(daily["pnl"].iloc[1:].std(ddof=1))
        ratio = realised / strategy.target_daily_vol
        assert (abs(ratio - 1.0) < 0.3) is deliverable, (strategy.target_daily_vol, realised)
        assert realised == pytest.approx(sizing["expected_daily_vol"], rel=0.3)  # the config says what it delivers
