"""The walk-forward: replay the daily configs over a range, trade them, and report beside the baseline.

One call, :func:`run_walk_forward`, given each sector's closes panel (see
:class:`~pairs_assets.quant.walkforward.replay.SectorPanel`):

1. builds the trading config of every as-of session from the session before the range's first
   session to the one before its last (:func:`~pairs_assets.quant.walkforward.replay.build_configs`,
   the daily graph's own stage functions);
2. turns them into trades (:func:`~pairs_assets.quant.walkforward.replay.trade_configs`): the config
   for as-of D applies from session D+1;
3. builds the classical baseline's trades on the same closes
   (:func:`~pairs_assets.quant.walkforward.baseline.classical_baseline`);
4. executes both at every cost with the lag (:func:`~pairs_assets.quant.walkforward.execution.execute`)
   and summarises per sector, in total and by sub-period (:mod:`~pairs_assets.quant.walkforward.metrics`).

Totals: our configs size positions as fractions of one portfolio's equity, so the total is the sum
of the sectors' P&L. The baseline gives each traded pair 1/top_n of *its sector's* capital, so its
total gives each of the N sectors 1/N of the capital (the sectors' P&L summed and divided by N).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pairs_assets.errors import PairsError
from pairs_assets.quant import rule
from pairs_assets.quant.walkforward.baseline import classical_baseline
from pairs_assets.quant.walkforward.execution import execute, validate_cost_bp, validate_lag
from pairs_assets.quant.walkforward.metrics import DEFAULT_PERIODS, SUMMARY_KEYS, by_period, summarize
from pairs_assets.quant.walkforward.replay import ON_DROP_CHOICES, SectorPanel, build_configs, trade_configs
from pairs_assets.quant.walkforward.score_study import forward_pnl, rank_evidence

__all__ = [
    "SUMMARY_COLUMNS",
    "WalkForwardError",
    "WalkForwardResult",
    "WalkForwardSettings",
    "required_history",
    "run_walk_forward",
]

SUMMARY_COLUMNS = ["strategy", "sector", "cost_bp", "period", *SUMMARY_KEYS]


class WalkForwardError(PairsError, ValueError):
    """A walk-forward cannot run as asked; the message names the setting, sector or session."""


class WalkForwardSettings(BaseModel):
    """Everything that defines a walk-forward besides the strategy settings and the bars.

    Attributes
    ----------
    start, end : str
        First decision session and last session of the range (YYYY-MM-DD).
    sectors : list of str or None
        Sectors; None = every sector of the universe.
    costs : list of float
        Basis points of traded notional per leg, one result per value.
    lag : int
        A decision at the close of t executes at the close of t+lag (1; 0 only to compare).
    on_drop : {"keep", "exit"}
        An open position whose pair leaves the next config.
    max_holding : int
        Close a position held this many sessions (0 = no limit).
    periods : list of (label, start, end)
        Sub-periods reported beside the full range.
    n_trials : int
        Configurations tried so far (the deflated Sharpe's input).
    gru : bool
        Train each selected pair's GRU per session and gate entries as the signals do.
    score_horizon : int
        Sessions of forward P&L in the score study.
    workers : int or None
        Processes replaying sectors side by side (None: one per CPU).
    baseline_formation, baseline_trading, baseline_step, baseline_top_n : int
        The classical baseline's formation and trading periods, step and number of pairs.
    baseline_pvalue_max, baseline_entry_z, baseline_stop_z : float
        The baseline's Engle-Granger threshold and z bands.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field("1995-01-03", description="First decision session of the range (YYYY-MM-DD).")
    end: str = Field("2022-12-28", description="Last session of the range (YYYY-MM-DD).")
    sectors: list[str] | None = Field(None, description="Sectors; None = every sector of the universe.")
    costs: list[float] = Field([0.0, 5.0, 10.0, 20.0], description="Costs in basis points of traded notional per leg.")
    lag: int = Field(1, description="A decision at the close of t executes at the close of t+lag (1; 0 only to compare).")
    on_drop: str = Field(
        rule.DEFAULT_ON_DROP,
        description="An open position whose pair leaves the next config: 'exit' at that close, or 'keep' "
        "(trade it with its last config until exit, stop or max_holding).",
    )
    max_holding: int = Field(
        rule.DEFAULT_MAX_HOLDING, ge=0, description="Close a position held this many sessions (0 = no limit)."
    )
    periods: list[tuple[str, str, str]] = Field(
        [tuple(p) for p in DEFAULT_PERIODS], description="Sub-periods (label, first date, last date)."
    )
    n_trials: int = Field(1, ge=1, description="Configurations tried so far (the deflated Sharpe's input).")
    gru: bool = Field(False, description="Train each selected pair's GRU per session and gate entries as the signal job does.")
    score_horizon: int = Field(20, ge=1, description="Sessions of forward P&L in the score study.")
    workers: int | None = Field(
        None, ge=1, description="Processes replaying sectors side by side (None: one per CPU, at most one per sector)."
    )
    baseline_formation: int = Field(252, ge=20)
    baseline_trading: int = Field(126, ge=1)
    baseline_step: int = Field(126, ge=1)
    baseline_top_n: int = Field(5, ge=1)
    baseline_pvalue_max: float = Field(0.05, gt=0.0, lt=1.0)
    baseline_entry_z: float = Field(2.0, gt=0.0)
    baseline_stop_z: float = Field(4.0, gt=0.0)

    @field_validator("start", "end")
    @classmethod
    def _date(cls, value: str) -> str:
        try:
            return str(pd.Timestamp(value).date())
        except (ValueError, TypeError):
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, value):
        values = value.split(",") if isinstance(value, str) else value
        out = []
        for item in values:
            try:
                number = float(item)
            except (TypeError, ValueError):
                raise ValueError(f"cost {item!r} is not a number (basis points per leg)") from None
            out.append(validate_cost_bp(number))
        if not out:
            raise ValueError("give at least one cost")
        return sorted(set(out))

    @field_validator("lag")
    @classmethod
    def _lag(cls, value: int) -> int:
        return validate_lag(value)

    @field_validator("on_drop")
    @classmethod
    def _on_drop(cls, value: str) -> str:
        if value not in ON_DROP_CHOICES:
            raise ValueError(f"on_drop must be one of {ON_DROP_CHOICES}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _range(self) -> WalkForwardSettings:
        if pd.Timestamp(self.start) > pd.Timestamp(self.end):
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


@dataclass
class WalkForwardResult:
    """What a walk-forward produced (every frame in tidy long form).

    Attributes
    ----------
    settings : WalkForwardSettings
    summary : pandas.DataFrame
        Per strategy, sector, cost and period: the performance table.
    daily : pandas.DataFrame
        Daily P&L per strategy, sector and cost (sector ``all``: the total).
    trades : pandas.DataFrame
        Every executed trade.
    configs, config_pairs : dict of str to int
        Per sector: configs built and pairs they held.
    seconds : dict of str to float
        Wall time per phase.
    gru : dict
        Per sector: GRU training counts (with ``gru``).
    score_study, score_evidence : pandas.DataFrame or None
        Forward P&L of every scored pair and the score's rank evidence.
    """

    settings: WalkForwardSettings
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    daily: pd.DataFrame  # strategy, sector, cost_bp, session, pnl, gross_pnl, cost, turnover, gross_exposure, n_positions
    trades: pd.DataFrame  # executed trades of every strategy and sector at every cost (column cost_bp)
    configs: dict[str, int]  # sector → configs built
    config_pairs: dict[str, int]  # sector → pair-days in the configs
    seconds: dict[str, float] = field(default_factory=dict)
    gru: dict[str, dict[str, int]] = field(default_factory=dict)  # sector → GRU gate counts
    score_study: pd.DataFrame | None = None  # every scored pair of every formation, with its forward P&L
    score_evidence: pd.DataFrame | None = None  # Spearman of each score with the forward P&L (95% CI)


def required_history(strategy, settings: WalkForwardSettings) -> int:
    """Sessions of bars needed before the first as-of session: the longest window the run reads.

    Parameters
    ----------
    strategy : StrategySettings
    settings : WalkForwardSettings

    Returns
    -------
    int
    """
    windows = [strategy.formation_window, strategy.garch_sessions, strategy.backtest_sessions]
    if settings.gru:
        windows.append(strategy.gru_window)
    # the first configs' formation session may lie up to reselect_every - 1 sessions earlier
    return max(strategy.reach(max(windows)), settings.baseline_formation + 1)


def _check_range(panel: SectorPanel, sessions: pd.DatetimeIndex, history: int, end: pd.Timestamp, next_session) -> None:
    index = panel.closes.index
    if sessions.empty:
        raise WalkForwardError(f"sector {panel.sector}: the range holds no session of the bars ({index[0].date()} → {index[-1].date()})")
    if next_session(index[-1]) <= end:
        raise WalkForwardError(
            f"sector {panel.sector}: the range {sessions[0].date()} → {sessions[-1].date()} lies outside the bars "
            f"({index[0].date()} → {index[-1].date()})"
        )
    first = index.get_loc(sessions[0])
    if first < history:
        raise WalkForwardError(
            f"sector {panel.sector}: the range starts {sessions[0].date()} but the longest window needs {history} "
            f"sessions of bars before it and only {first} exist (from {index[0].date()}); start later or load "
            f"older bars"
        )


def run_walk_forward(
    panels: dict[str, SectorPanel],
    symbols_by_sector: dict[str, Sequence[str]],
    next_session: Callable[[pd.Timestamp], pd.Timestamp],
    strategy,
    settings: WalkForwardSettings,
    *,
    models_for=None,
    entry_gate=None,
    formation_of=None,
    progress: Callable[[int], None] | None = None,
) -> WalkForwardResult:
    """Replay, trade and summarise (see the module docstring).

    Parameters
    ----------
    panels : dict of str to SectorPanel
        Each sector's closes over the range and the history before it.
    symbols_by_sector : dict of str to sequence of str
        The universe.
    next_session : callable
        The exchange calendar's next session (for the last config's effective session).
    strategy : StrategySettings
    settings : WalkForwardSettings
    models_for, entry_gate : callable, optional
        The GRU stage and gate (see :func:`~pairs_assets.quant.walkforward.replay.build_configs`
        and :func:`~pairs_assets.quant.walkforward.replay.trade_configs`).
    formation_of : callable, optional
        The formation session of an as-of session.
    progress : callable, optional
        ``progress(n)`` is called as as-of sessions are done.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    WalkForwardError
        A range outside the bars or shorter than the longest window.
    """
    sectors = list(panels)
    if not sectors:
        raise WalkForwardError("no sector to walk forward")
    history = required_history(strategy, settings)
    for sector in sectors:
        panel = panels[sector]
        _check_range(panel, _range_sessions(panel, settings), history, pd.Timestamp(settings.end), next_session)
    workers = min(settings.workers or os.cpu_count() or 1, len(sectors))
    jobs = [(panels[s], symbols_by_sector[s], next_session, strategy, settings, formation_of) for s in sectors]
    if workers > 1 and models_for is None and entry_gate is None:
        # the settings travel as (class, fields): a Dagster resource does not pickle itself
        strategy_spec = (type(strategy), strategy.model_dump())
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_run_sector_in_worker, panel, symbols, nxt, strategy_spec, wf, formation): panel.sector
                for panel, symbols, nxt, _strategy, wf, formation in jobs
            }
            outcomes = {}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                if progress is not None:
                    progress(outcomes[futures[future]].n_sessions)
    else:
        outcomes = {
            job[0].sector: _run_sector(*job, models_for=models_for, entry_gate=entry_gate, progress=progress) for job in jobs
        }
    daily_frames, trade_frames, rows = [], [], []
    configs_built, config_pairs, seconds, gru_counts = {}, {}, {}, {}
    totals: dict[tuple[str, float], list[tuple[pd.DataFrame, pd.DataFrame]]] = {}
    for sector in sectors:
        outcome = outcomes[sector]
        configs_built[sector], config_pairs[sector], seconds[sector] = outcome.configs, outcome.pair_days, outcome.seconds
        if outcome.gru:
            gru_counts[sector] = outcome.gru
        for (name, cost), (daily, trades) in outcome.executions.items():
            rows.extend(_summary_rows(name, sector, cost, daily, trades, settings))
            daily_frames.append(daily.rename_axis("session").reset_index().assign(strategy=name, sector=sector, cost_bp=cost))
            trade_frames.append(trades.assign(cost_bp=cost))
            totals.setdefault((name, cost), []).append((daily, trades))
    for (name, cost), parts in totals.items():
        scale = 1.0 / len(parts) if name == "baseline" else 1.0
        summed = _sum_daily([d for d, _ in parts])
        daily = summed * scale
        daily["n_positions"] = summed["n_positions"]  # a count, not scaled
        trades = pd.concat([t for _, t in parts], ignore_index=True)
        trades = trades.assign(pnl=trades["pnl"] * scale)
        rows.extend(_summary_rows(name, "all", cost, daily, trades, settings))
        daily_frames.append(daily.rename_axis("session").reset_index().assign(strategy=name, sector="all", cost_bp=cost))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    # strategy (ours first), sector (the total first), cost, period (full first), as given otherwise
    sector_rank = {s: i for i, s in enumerate(["all", *sectors])}
    period_rank = {p: i for i, p in enumerate(["full", *[label for label, _, _ in settings.periods]])}
    summary = (
        summary.assign(
            _s=summary["strategy"].map({"default": 0, "default_gru": 1, "baseline": 2}),
            _c=summary["sector"].map(sector_rank),
            _p=summary["period"].map(period_rank),
        )
        .sort_values(["_s", "_c", "cost_bp", "_p"], kind="mergesort")
        .drop(columns=["_s", "_c", "_p"])
        .reset_index(drop=True)
    )
    studies = [outcomes[sector].study for sector in sectors if len(outcomes[sector].study)]
    study = pd.concat(studies, ignore_index=True) if studies else None
    evidence = rank_evidence(study) if study is not None else None
    daily_all = pd.concat(daily_frames, ignore_index=True)
    trades_all = pd.concat(trade_frames, ignore_index=True) if trade_frames else pd.DataFrame()
    return WalkForwardResult(
        settings, summary, daily_all, trades_all, configs_built, config_pairs, seconds, gru_counts, study, evidence
    )


def _range_sessions(panel: SectorPanel, settings: WalkForwardSettings) -> pd.DatetimeIndex:
    index = panel.closes.index
    return index[(index >= pd.Timestamp(settings.start)) & (index <= pd.Timestamp(settings.end))]


@dataclass
class _SectorOutcome:
    configs: int
    pair_days: int
    n_sessions: int
    executions: dict  # (strategy, cost) → (daily, trades)
    study: pd.DataFrame
    seconds: float
    gru: dict  # GRU gate counts: trained, skipped, allowed, vetoed (empty without the gate)


def _run_sector_in_worker(panel, symbols, next_session, strategy_spec, settings, formation_of) -> _SectorOutcome:
    cls, fields = strategy_spec
    if settings.gru:
        import torch

        torch.set_num_threads(1)  # one process per core already
    return _run_sector(panel, symbols, next_session, cls(**fields), settings, formation_of)


def _run_sector(
    panel, symbols, next_session, strategy, settings, formation_of=None, *, models_for=None, entry_gate=None, progress=None
) -> _SectorOutcome:
    """One sector: configs, our trades, the baseline's, executed at every cost."""
    t0 = time.perf_counter()
    sector, index = panel.sector, panel.closes.index
    sessions = _range_sessions(panel, settings)
    first = index.get_loc(sessions[0])
    as_of = index[first - 1 : index.get_loc(sessions[-1])]  # the config for as-of D applies at D+1
    effective = list(index[first : first + len(as_of)])
    if len(effective) < len(as_of):
        effective.append(next_session(as_of[-1]))
    gate = None
    if settings.gru and models_for is None:
        from pairs_assets.quant.walkforward.gru_gate import GRUGate

        gate = GRUGate(panel.closes, strategy, sector)
        models_for, entry_gate = gate.models_for, gate.entry_gate
    scored: list = []
    configs = build_configs(
        panel, as_of, effective, symbols, strategy, formation_of=formation_of, models_for=models_for, progress=progress,
        scored=scored,
    )
    study_cost = 5.0 if 5.0 in settings.costs else settings.costs[0]
    study = (
        forward_pnl(pd.concat(scored, ignore_index=True), panel.closes, strategy.formation_window,
                    horizon=settings.score_horizon, lag=settings.lag, cost_bp=study_cost).assign(sector=sector)
        if scored else pd.DataFrame()
    )
    def ours(name: str, gate_fn) -> pd.DataFrame:
        return trade_configs(
            configs, panel.closes, sessions, strategy_name=name, on_drop=settings.on_drop,
            max_holding=settings.max_holding, entry_gate=gate_fn,
        ).assign(sector=sector)

    strategies = [("default", ours("default", None if gate is not None else entry_gate))]
    if gate is not None:  # the same configs with and without the GRU's veto, side by side
        strategies.append(("default_gru", ours("default_gru", entry_gate)))
    baseline = classical_baseline(
        panel.closes, sessions, formation=settings.baseline_formation, trading=settings.baseline_trading,
        step=settings.baseline_step, top_n=settings.baseline_top_n, pvalue_max=settings.baseline_pvalue_max,
        entry_z=settings.baseline_entry_z, stop_z=settings.baseline_stop_z, sector=sector,
    )
    executions = {}
    for name, trades in (*strategies, ("baseline", baseline)):
        for cost in settings.costs:
            result = execute(trades, panel.closes, sessions, lag=settings.lag, cost_bp=cost)
            executions[(name, cost)] = (result.daily, result.trades)
    return _SectorOutcome(
        configs=len(configs), pair_days=sum(len(c.pairs) for c in configs.values()), n_sessions=len(as_of),
        executions=executions, study=study, seconds=round(time.perf_counter() - t0, 2),
        gru={} if gate is None else {"trained": gate.trained, "skipped": gate.skipped, "allowed": gate.allowed, "vetoed": gate.vetoed},
    )


def _sum_daily(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = frames[0].copy()
    for frame in frames[1:]:
        out = out.add(frame, fill_value=0.0)
    return out


def _summary_rows(name: str, sector: str, cost: float, daily: pd.DataFrame, trades: pd.DataFrame, settings) -> list[list]:
    full = summarize(daily, trades, n_trials=settings.n_trials)
    rows = [[name, sector, cost, "full", *[full[k] for k in SUMMARY_KEYS]]]
    # only the sub-periods that overlap the range
    periods = [tuple(p) for p in settings.periods if pd.Timestamp(p[1]) <= pd.Timestamp(settings.end) and pd.Timestamp(p[2]) >= pd.Timestamp(settings.start)]
    for label, stats in by_period(daily, trades, periods, n_trials=settings.n_trials).items():
        rows.append([name, sector, cost, label, *[stats[k] for k in SUMMARY_KEYS]])
    return rows
