"""Plots a person reads: the walk-forward's equity curve and drawdown, ours beside the baseline; a
pair model's training history and its spread with z bands (the registry logs them to MLflow).

matplotlib is imported inside each function, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def equity_figure(daily: pd.DataFrame, cost_bp: float, title: str):
    """Cumulative net P&L (top) and drawdown (bottom) of every strategy's total at ``cost_bp``.

    Parameters
    ----------
    daily : pandas.DataFrame
        The walk-forward's long daily frame (strategy, sector, cost_bp, session, pnl).
    cost_bp : float
        The cost level drawn.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Agg backend; the caller saves it.
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


def training_history_figure(history: list[dict[str, float]], best_epoch: int, title: str) -> Figure:
    """Training and validation loss per epoch, the best epoch marked (the GRU's MLflow artifact).

    Parameters
    ----------
    history : list of dict
        One entry per epoch with ``epoch``, ``train_loss`` and ``val_loss``.
    best_epoch : int
        The epoch whose weights were kept.
    title : str
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot (no global state); the caller saves or logs it.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("binary cross-entropy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def spread_zbands_figure(spread: pd.Series, entry_z: float, z_window: int, title: str) -> Figure:
    """The spread with its rolling mean and ±``entry_z`` σ bands (top) and its z-score (bottom).

    Parameters
    ----------
    spread : pandas.Series
        The pair's spread by session.
    entry_z : float
        The entry threshold, drawn as bands and as ±levels on the z panel.
    z_window : int
        Sessions of the rolling mean, standard deviation and z-score.
    title : str
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; the caller saves or logs it.
    """
    from matplotlib.figure import Figure

    from pairs_assets.quant.features import rolling_zscore

    mean = spread.rolling(z_window, min_periods=z_window).mean()
    std = spread.rolling(z_window, min_periods=z_window).std(ddof=1)
    z = rolling_zscore(spread, z_window)
    fig = Figure(figsize=(10, 6), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.plot(spread.index, spread.to_numpy(), lw=0.8, label="spread")
    top.plot(mean.index, mean.to_numpy(), lw=0.8, label=f"{z_window}-session mean")
    top.fill_between(
        spread.index,
        (mean - entry_z * std).to_numpy(),
        (mean + entry_z * std).to_numpy(),
        alpha=0.2,
        label=f"±{entry_z:g} σ",
    )
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.plot(z.index, z.to_numpy(), lw=0.6, color="black", label=f"z ({z_window})")
    for level in (entry_z, -entry_z):
        bottom.axhline(level, color="red", lw=0.8, linestyle="--")
    bottom.axhline(0.0, color="grey", lw=0.6)
    bottom.set_ylabel("z")
    fig.tight_layout()
    return fig


def robustness_figure(table: pd.DataFrame, cost_bp: float, title: str):
    """Heat-map of the robustness study: each variant's Sharpe (colour, centred on 0) on the
    development and held-out periods side by side, the 95% interval written in the cell and a ★
    where it excludes zero; "–" in place of the Sharpe below the minimum number of trades.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`pairs_assets.quant.walkforward.robustness.robustness_table`.
    cost_bp : float
        The cost level drawn.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Agg backend; the caller saves it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    at = table[table["cost_bp"] == cost_bp]
    if at.empty:
        raise ValueError(f"robustness figure: no row at {cost_bp:g} bp")
    variants = list(dict.fromkeys(at["variant"]))
    periods = list(dict.fromkeys(at["period"]))
    cell = {(r.variant, r.period): r for r in at.itertuples()}
    # below the minimum number of trades a Sharpe means nothing: the cell is grey, not coloured
    values = np.array(
        [
            [cell[(v, p)].sharpe if (v, p) in cell and not cell[(v, p)].few_trades else np.nan for p in periods]
            for v in variants
        ]
    )
    finite = np.abs(values[np.isfinite(values)])
    bound = max(0.5, float(finite.max()) if finite.size else 0.5)
    fig, ax = plt.subplots(figsize=(3.2 + 2.6 * len(periods), 0.9 + 0.42 * len(variants)))
    cmap = matplotlib.colormaps["RdBu"].copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
    for i, v in enumerate(variants):
        for j, p in enumerate(periods):
            r = cell.get((v, p))
            if r is None:
                continue
            if r.few_trades:
                text = f"– (n={r.trades})"
            elif np.isfinite(r.sharpe_low):
                text = f"{r.sharpe:+.2f} [{r.sharpe_low:+.2f}, {r.sharpe_high:+.2f}]{' ★' if r.excludes_zero else ''}"
            else:
                text = f"{r.sharpe:+.2f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white"
                if not r.few_trades and np.isfinite(r.sharpe) and abs(r.sharpe) > 0.6 * bound
                else "black",
            )
    labels = {p: at[at["period"] == p]["period_label"].iloc[0] for p in periods}
    ax.set_xticks(range(len(periods)), [f"{p.replace('_', '-')} {labels[p]}" for p in periods])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(variants)), variants, fontsize=8)
    fig.colorbar(image, ax=ax, label=f"Sharpe at {cost_bp:g} bp", fraction=0.05)
    ax.set_title(
        f"{title}\nSharpe [95% block-bootstrap interval]; ★ the interval excludes zero; grey: too few trades",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
