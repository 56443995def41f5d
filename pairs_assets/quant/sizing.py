"""Position sizing of a pair by volatility targeting within risk limits.

A pair position holds notional ``f_y`` (fraction of equity) of y and ``f_x = f_y·|β|`` of x
(the hedge ratio keeps the spread exposure). Its daily P&L volatility is ≈ ``f_y·σ`` where σ is
the GARCH 1-step forecast of the spread's daily log change. Volatility targeting sets
``f_y = v / σ`` with the per-pair target ``v = min(target_daily_vol, max_portfolio_risk / n_pairs)``
(so that the pairs together never plan more than ``max_portfolio_risk`` of daily volatility),
then scales both legs down together until each leg is at most ``max_position``.
Reference: Moreira & Muir (2017), "Volatility-managed portfolios", J. Finance 72.
"""

from __future__ import annotations

import math


def pair_sizing(
    *,
    sigma_forecast: float,
    hedge_ratio: float,
    target_daily_vol: float,
    max_position: float,
    max_portfolio_risk: float,
    n_pairs: int,
) -> dict[str, float]:
    """Leg fractions of equity for one pair.

    Parameters
    ----------
    sigma_forecast : float
        The spread's one-session σ forecast.
    hedge_ratio : float
        β of the pair (the x leg is |β| times the y leg).
    target_daily_vol : float
        The portfolio's daily volatility target.
    max_position : float
        The largest fraction of equity in either leg (both legs scale down together).
    max_portfolio_risk : float
        The cap on the sum of the pairs' volatility budgets.
    n_pairs : int
        Pairs sharing the budget.

    Returns
    -------
    dict of str to float
        ``y_fraction``, ``x_fraction``, ``gross_fraction`` (sum of both legs), ``pair_vol_target``
        (v) and ``expected_daily_vol`` (``y_fraction·σ``). A non-positive or non-finite σ gives
        zero positions (nothing to size against).
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    for name, value in (
        ("target_daily_vol", target_daily_vol),
        ("max_position", max_position),
        ("max_portfolio_risk", max_portfolio_risk),
    ):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value}")
    target = min(target_daily_vol, max_portfolio_risk / n_pairs)
    if not (math.isfinite(sigma_forecast) and sigma_forecast > 0) or not math.isfinite(hedge_ratio):
        return {
            "y_fraction": 0.0,
            "x_fraction": 0.0,
            "gross_fraction": 0.0,
            "pair_vol_target": target,
            "expected_daily_vol": 0.0,
        }
    y_fraction = target / sigma_forecast
    x_fraction = y_fraction * abs(hedge_ratio)
    largest = max(y_fraction, x_fraction)
    if largest > max_position:
        shrink = max_position / largest
        y_fraction, x_fraction = y_fraction * shrink, x_fraction * shrink
    return {
        "y_fraction": y_fraction,
        "x_fraction": x_fraction,
        "gross_fraction": y_fraction + x_fraction,
        "pair_vol_target": target,
        "expected_daily_vol": y_fraction * sigma_forecast,
    }
