"""Does the selection score rank pairs by what they earn next? The score study of the walk-forward.

For every pair the cointegration stage found at a formation session F (selected or not), the
*forward P&L* is what betting on reversion from the formation's z earns over the next ``horizon``
sessions, with the walk-forward's lag and costs: short the spread when z_F > 0, long when z_F < 0
(one unit of ln y against β units of ln x, normalised by gross exposure), entered at the close of
F + lag and closed ``horizon`` sessions later, minus ``2·cost_bp`` basis points (entry and exit).
z_F uses the formation's hedge ratio and the spread's mean and σ over the formation window.
:func:`rank_evidence` gives Spearman's ρ of each score component and the composite with that
forward P&L, with a 95% confidence interval (Fisher z, standard error 1.03/√(n−3); Fieller,
Hartley & Pearson 1957), and the mean forward P&L of selected and rejected pairs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["SCORE_COMPONENTS", "forward_pnl", "rank_evidence"]

SCORE_COMPONENTS = ("aic_score", "forecast_score", "backtest_score", "diagnostic_score", "composite")


def forward_pnl(
    scored: pd.DataFrame,
    closes: pd.DataFrame,
    formation_window: int,
    horizon: int = 20,
    lag: int = 1,
    cost_bp: float = 5.0,
) -> pd.DataFrame:
    """The forward P&L of every scored pair after its formation session.

    Parameters
    ----------
    scored : pandas.DataFrame
        Formation_session, pair_id, y, x, hedge_ratio, intercept, score components, selected.
    closes : pandas.DataFrame
        Sessions × symbols.
    formation_window : int
        Sessions of the formation window (the z-score's mean and std).
    horizon : int, default 20
        Sessions of forward P&L.
    lag : int, default 1
        Execution lag.
    cost_bp : float, default 5.0
        Basis points per leg.

    Returns
    -------
    pandas.DataFrame
        ``scored`` plus ``z_formation`` and ``forward_pnl`` (NaN when the horizon runs past the
        closes).
    """
    index = closes.index
    out = scored.copy()
    z_values, pnl_values = [], []
    logs = np.log(closes)
    for row in scored.itertuples():
        end = index.get_loc(row.formation_session)
        spread = (logs[row.y] - row.hedge_ratio * logs[row.x] - row.intercept).to_numpy()
        window = spread[end - formation_window + 1 : end + 1]
        z = (spread[end] - window.mean()) / window.std(ddof=1)
        entry, exit_ = end + lag, end + lag + horizon
        z_values.append(z)
        if exit_ >= len(spread) or not np.isfinite(z) or z == 0:
            pnl_values.append(math.nan)
            continue
        side = -1.0 if z > 0 else 1.0
        pnl_values.append(side * (spread[exit_] - spread[entry]) / (1.0 + abs(row.hedge_ratio)) - 2.0 * cost_bp / 1e4)
    return out.assign(z_formation=z_values, forward_pnl=pnl_values)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, int]:
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 4 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, math.nan, math.nan, n
    from scipy.stats import spearmanr  # here: importing the definitions should not load scipy.stats

    rho = float(spearmanr(x[ok], y[ok]).statistic)
    half = 1.96 * 1.03 / math.sqrt(n - 3)
    centre = math.atanh(max(min(rho, 0.999999), -0.999999))
    return rho, math.tanh(centre - half), math.tanh(centre + half), n


def rank_evidence(study: pd.DataFrame) -> pd.DataFrame:
    """Does the score rank pairs by their forward P&L?

    Parameters
    ----------
    study : pandas.DataFrame
        :func:`forward_pnl`'s output.

    Returns
    -------
    pandas.DataFrame
        Per score component and the composite: Spearman ρ with the forward P&L, its 95% CI and n;
        the mean forward P&L of selected against rejected pairs.
    """
    rows = []
    y = study["forward_pnl"].to_numpy(dtype=float)
    for column in SCORE_COMPONENTS:
        rho, low, high, n = _spearman(study[column].to_numpy(dtype=float), y)
        rows.append({"score": column, "spearman": rho, "ci_low": low, "ci_high": high, "n": n})
    for label, mask in (("selected", study["selected"].astype(bool)), ("rejected", ~study["selected"].astype(bool))):
        values = study.loc[mask, "forward_pnl"].dropna()
        rows.append(
            {
                "score": f"mean forward P&L, {label}",
                "spearman": float(values.mean()) if len(values) else math.nan,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "n": len(values),
            }
        )
    return pd.DataFrame(rows)
