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
        pair_sizing(sigma_forecast=0.01, hedge_ratio=1.0, n_pairs=1, target_daily_vol=0.01, max_position=0.0, max_portfolio_risk=0.05)
    with pytest.raises(ValueError, match="n_pairs"):
        pair_sizing(sigma_forecast=0.01, hedge_ratio=1.0, n_pairs=0, **LIMITS)
