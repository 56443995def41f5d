"""Plots a person reads: the walk-forward's equity curve and drawdown, ours beside the baseline."""

from __future__ import annotations

import pandas as pd


def equity_figure(daily: pd.DataFrame, cost_bp: float, title: str):
    """Cumulative net P&L (top) and drawdown (bottom) of every strategy's total at ``cost_bp``.

    ``daily``: the walk-forward's long daily frame (strategy, sector, cost_bp, session, pnl).
    Returns a matplotlib Figure (Agg backend; the caller saves it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = daily[(daily["sector"] == "all") & (daily["cost_bp"] == cost_bp)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for strategy, frame in totals.groupby("strategy", sort=False):
        frame = frame.sort_values("session")
        equity = frame["pnl"].cumsum().to_numpy()
        sessions = pd.to_datetime(frame["session"])
        top.plot(sessions, equity, label=f"{strategy}", linewidth=1.2)
        drawdown = equity - pd.Series(equity).cummax().clip(lower=0.0).to_numpy()
        bottom.fill_between(sessions, drawdown, 0.0, alpha=0.35, label=strategy)
    top.axhline(0.0, color="grey", linewidth=0.6)
    top.set_ylabel("cumulative P&L (fraction of capital)")
    top.set_title(f"{title} — all sectors, {cost_bp:g} bp per leg, net of costs")
    top.legend(loc="upper left")
    bottom.set_ylabel("drawdown")
    bottom.set_xlabel("session")
    fig.tight_layout()
    return fig
