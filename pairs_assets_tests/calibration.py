"""Calibration of the walk-forward on generated markets (issue 18 item 7; not installed).

An instrument is trusted when it reads zero where there is nothing and finds what was planted. The
walk-forward (the daily graph's stage functions, the trading rule, the summary) runs here on the
markets of :func:`pairs_assets_tests.synthetic.calibration_market`, laid on real NYSE sessions and
scheduled by the same exchange-calendar formation schedule as the platform:

* ``independent`` — independent random walks: no pair reaches ``correlation_min``, nothing trades;
* ``factor`` — sector-correlated random walks without cointegration: pairs pass the correlation
  screen and now and then Engle-Granger (its false positives), but no spread reverts, so across
  seeds the strategy earns nothing on average (costs make it a little negative);
* ``planted`` — the factor market with one cointegrated pair per sector: every planted pair is
  selected and the strategy earns.

Used by ``pairs_assets_tests/quant/test_calibration.py`` (short ranges) and
``pairs_assets_tests/benchmarks/bench_calibration.py`` (the full-range table).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pairs_assets import partitions
from pairs_assets.quant.walkforward.engine import (
    WalkForwardSettings,
    required_history,
    run_walk_forward,
)
from pairs_assets.quant.walkforward.replay import SectorPanel
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.synthetic import calibration_market

__all__ = ["CalibrationRun", "run_calibration"]


@dataclass(frozen=True)
class CalibrationRun:
    """One walk-forward on one generated market.

    Attributes
    ----------
    kind : str
    seed : int
    sharpe, sharpe_low, sharpe_high : float
        The total's Sharpe at ``cost_bp`` over the range and its 95% block-bootstrap interval (0
        when nothing traded).
    ann_return : float
    trades : int
        Our strategy's trades at ``cost_bp``.
    baseline_sharpe : float
        The classical baseline's Sharpe on the same market.
    planted : int
        Planted pairs in the market.
    found : int
        Planted pairs that some formation selected (in either ordering).
    traded_pairs : int
        Distinct pairs (unordered) our strategy traded.
    planted_trades : int
        Our trades on planted pairs.
    planted_pnl, other_pnl : float
        Net P&L (fraction of capital, at ``cost_bp``) of the trades on planted pairs and on the rest.
    """

    kind: str
    seed: int
    sharpe: float
    sharpe_low: float
    sharpe_high: float
    ann_return: float
    trades: int
    baseline_sharpe: float
    planted: int
    found: int
    traded_pairs: int
    planted_trades: int
    planted_pnl: float = 0.0
    other_pnl: float = 0.0


def run_calibration(
    kind: str,
    seed: int,
    start: str,
    end: str,
    *,
    sectors: dict[str, int] | None = None,
    strategy: StrategySettings | None = None,
    cost_bp: float = 5.0,
    workers: int = 1,
) -> CalibrationRun:
    """The walk-forward of ``strategy`` (default: the defaults) on a generated ``kind`` market.

    The market spans the range and the history its longest window needs before it, on NYSE
    sessions; ``sectors`` maps sector → symbols (default three sectors of six).
    """
    strategy = strategy or StrategySettings()
    sectors = sectors or {"alpha": 6, "beta": 6, "gamma": 6}
    settings = WalkForwardSettings(
        start=start,
        end=end,
        costs=[0.0, cost_bp],
        workers=workers,
        periods=[],
        min_trades=1,
        bootstrap_resamples=500,
    )
    history = required_history(strategy, settings)
    before = partitions.sessions_in_range(pd.Timestamp(start) - pd.Timedelta(days=int(history * 1.5) + 30), start)
    sessions = partitions.sessions_in_range(before[-(history + 2)], partitions.next_session(end))
    closes, by_sector, planted = calibration_market(kind, sessions, sectors, seed)
    panels = {s: SectorPanel(s, closes[symbols], f"calibration:{kind}:{seed}") for s, symbols in by_sector.items()}
    from pairs_assets.assets.walk_forward import baseline_session_number

    result = run_walk_forward(
        panels,
        {s: tuple(v) for s, v in by_sector.items()},
        partitions.next_session,
        strategy,
        settings,
        formation_of=partitions.formation_schedule(strategy.reselect_every, end, phase=strategy.formation_phase),
        session_number=baseline_session_number,
    )
    summary = result.summary
    row = summary[
        (summary["strategy"] == "default")
        & (summary["sector"] == "all")
        & (summary["cost_bp"] == cost_bp)
        & (summary["period"] == "full")
    ].iloc[0]
    base = summary[
        (summary["strategy"] == "baseline")
        & (summary["sector"] == "all")
        & (summary["cost_bp"] == cost_bp)
        & (summary["period"] == "full")
    ].iloc[0]
    trades = result.trades[(result.trades["strategy"] == "default") & (result.trades["cost_bp"] == cost_bp)]
    unordered = {frozenset((t.y, t.x)) for t in trades.itertuples()}
    planted_sets = {frozenset((y, x)) for _, y, x in planted}
    selected = set()
    if result.score_study is not None and len(result.score_study):
        study = result.score_study
        chosen = study[study["selected"].astype(bool)]
        selected = {frozenset((r.y, r.x)) for r in chosen.itertuples()}
    found = len(planted_sets & (selected | unordered))
    on_planted = pd.Series(
        [frozenset((t.y, t.x)) in planted_sets for t in trades.itertuples()], index=trades.index, dtype=bool
    )
    traded = int(row["trades"])
    nothing = traded == 0
    return CalibrationRun(
        kind=kind,
        seed=seed,
        sharpe=0.0 if nothing else float(row["sharpe"]),
        sharpe_low=0.0 if nothing else float(row["sharpe_low"]),
        sharpe_high=0.0 if nothing else float(row["sharpe_high"]),
        ann_return=float(row["ann_return"]) if row["ann_return"] == row["ann_return"] else 0.0,
        trades=traded,
        baseline_sharpe=float(base["sharpe"]),
        planted=len(planted_sets),
        found=found,
        traded_pairs=len(unordered),
        planted_trades=int(on_planted.sum()),
        planted_pnl=float(trades.loc[on_planted, "pnl"].sum()),
        other_pnl=float(trades.loc[~on_planted, "pnl"].sum()),
    )
