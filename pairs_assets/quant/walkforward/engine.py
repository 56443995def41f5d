"""The walk-forward: replay the daily configs over a range, trade them, and report beside the baseline.

One call, :func:`run_walk_forward`, given each sector's closes panel (see
:class:`~pairs_assets.quant.walkforward.replay.SectorPanel`):

1. builds the trading config of every as-of session from the session before the range's first
   session to the one before its last (:func:`~pairs_assets.quant.walkforward.replay.build_configs`,
   the daily graph's own stage functions);
2. turns them into trades (:func:`~pairs_assets.quant.walkforward.replay.trade_configs`): the config
   for as-of D applies from session D+1; a panel with intraday bars (``SectorPanel.bars``) is traded
   on every bar, lag 1 = the next bar, its P&L summed per session (:mod:`~pairs_assets.quant.walkforward.bars`);
3. builds the classical baseline's trades on the same closes
   (:func:`~pairs_assets.quant.walkforward.baseline.classical_baseline`), its trading periods
   anchored to the exchange calendar when ``session_number`` is given (the period under way at the
   range start traded from its own start, only the range's sessions kept);
4. executes both at every cost with the lag (:func:`~pairs_assets.quant.walkforward.execution.execute`)
   and summarises per sector, in total and by sub-period (:mod:`~pairs_assets.quant.walkforward.metrics`):
   every Sharpe with its block-bootstrap interval, ours beside the baseline's on the same days with
   a paired interval of the difference; the deflated Sharpe on the periods that overlap the
   selection range (development years) with N and V counted by the trials ledger
   (:mod:`~pairs_assets.quant.walkforward.ledger`), the PSR against 0 everywhere.

Totals: our configs size positions as fractions of one portfolio's equity, so the total is the sum
of the sectors' P&L. The baseline gives each traded pair 1/top_n of *its sector's* capital, so its
total gives each of the N sectors 1/N of the capital (the sectors' P&L summed and divided by N).

Strategies are plugins (:class:`~pairs_assets.quant.walkforward.plugin.StrategyPlugin`): each sector
runs every strategy's ``walk_forward_sector`` in the given order; the rows carry each strategy's
labels, in that order; ``combine_sectors`` (``sum`` or ``mean``) makes its total; ``selected`` makes
its labels trials of the deflated Sharpe; the ``reference`` strategy (the classical baseline,
appended when none is given) is what ``vs_baseline`` compares with. Steps 1–2 are
:class:`~pairs_assets.quant.walkforward.builtin_strategies.GarchGruStrategy`'s, step 3
:class:`~pairs_assets.quant.walkforward.builtin_strategies.BaselineStrategy`'s. Without
``strategies`` the run is the legacy one, :func:`default_strategies`: the strategy settings as
``default`` (``default_gru`` with the GRU gate) beside ``baseline``.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pairs_assets.quant import rule
from pairs_assets.quant.strategy import Strategy
from pairs_assets.quant.walkforward.builtin_strategies import (
    BaselineParams,
    BaselineStrategy,
    GarchGruStrategy,
    baseline_executions,
    trade_bars,
)
from pairs_assets.quant.walkforward.execution import validate_cost_bp, validate_lag
from pairs_assets.quant.walkforward.ledger import Trial, TrialCount, count_trials, evaluated_label, trial_key
from pairs_assets.quant.walkforward.metrics import (
    BOOTSTRAP_BLOCK,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_PERIODS,
    SUMMARY_KEYS,
    by_period,
    sharpe_difference,
    summarize,
)
from pairs_assets.quant.walkforward.plugin import SectorContext, StrategyPlugin, WalkForwardError
from pairs_assets.quant.walkforward.replay import ON_DROP_CHOICES, SectorPanel
from pairs_assets.quant.walkforward.score_study import rank_evidence

__all__ = [
    "SUMMARY_COLUMNS",
    "WalkForwardError",
    "WalkForwardResult",
    "WalkForwardSettings",
    "baseline_executions",
    "default_strategies",
    "required_history",
    "run_baseline",
    "run_walk_forward",
    "strategy_histories",
    "strategy_labels",
    "trade_bars",
    "with_reference",
]

SUMMARY_COLUMNS = [
    "strategy",
    "sector",
    "cost_bp",
    "period",
    *SUMMARY_KEYS,
    "vs_baseline",
    "vs_baseline_low",
    "vs_baseline_high",
    "n_trials",
    "trials_source",
    "trial_sharpe_sd",
    "few_trades",
]
#: The development years: where configurations were compared and the defaults chosen (DESIGN 6b).
SELECTION_RANGE = ("1995-01-03", "2010-12-31")


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
    n_trials : int or None
        Configurations tried (the deflated Sharpe's N); None: counted by the trials ledger.
    selection : (str, str)
        The selection range (development years): the DSR is reported on periods overlapping it,
        the ledger counts the trials evaluated on it.
    bootstrap_block, bootstrap_resamples, bootstrap_seed : int
        The Sharpe intervals' circular block bootstrap (95%).
    min_trades : int
        Below this many trades the tables print Sharpe, t and DSR as "–" with the count.
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
    lag: int = Field(
        1, description="A decision at the close of t executes at the close of t+lag (1; 0 only to compare)."
    )
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
    n_trials: int | None = Field(
        None, ge=1, description="Configurations tried (the deflated Sharpe's N); None: counted by the trials ledger."
    )
    selection: tuple[str, str] = Field(
        SELECTION_RANGE, description="Selection range (development years): DSR there, PSR against 0 elsewhere."
    )
    bootstrap_block: int = Field(
        BOOTSTRAP_BLOCK, ge=1, description="Block length (sessions) of the Sharpe intervals' bootstrap."
    )
    bootstrap_resamples: int = Field(
        BOOTSTRAP_RESAMPLES, ge=10, description="Resamples of the Sharpe intervals' bootstrap."
    )
    bootstrap_seed: int = Field(0, ge=0, description="Seed of the Sharpe intervals' bootstrap.")
    min_trades: int = Field(
        10, ge=0, description="Below this many trades Sharpe, t and DSR print as '–' with the count."
    )
    gru: bool = Field(
        False, description="Train each selected pair's GRU per session and gate entries as the signal job does."
    )
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

    @field_validator("selection")
    @classmethod
    def _selection(cls, value: tuple[str, str]) -> tuple[str, str]:
        first, last = (cls._date(v) for v in value)
        if pd.Timestamp(first) > pd.Timestamp(last):
            raise ValueError(f"selection starts {first}, after its end {last}")
        return first, last

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
    trials : TrialCount or None
        The deflated Sharpe's N and V and where they came from.
    """

    settings: WalkForwardSettings
    summary: pd.DataFrame  # SUMMARY_COLUMNS
    daily: (
        pd.DataFrame
    )  # strategy, sector, cost_bp, session, pnl, gross_pnl, cost, turnover, gross_exposure, n_positions
    trades: pd.DataFrame  # executed trades of every strategy and sector at every cost (column cost_bp)
    configs: dict[str, int]  # sector → configs built
    config_pairs: dict[str, int]  # sector → pair-days in the configs
    seconds: dict[str, float] = field(default_factory=dict)
    gru: dict[str, dict[str, int]] = field(default_factory=dict)  # sector → GRU gate counts
    score_study: pd.DataFrame | None = None  # every scored pair of every formation, with its forward P&L
    score_evidence: pd.DataFrame | None = None  # Spearman of each score with the forward P&L (95% CI)
    trials: TrialCount | None = None
    bars: str = "daily closes"  # what our trades decided on (see :func:`bars_traded`)


def bars_traded(panels: dict[str, SectorPanel]) -> str:
    """What ours traded on: ``daily closes``, or, when a panel has intraday bars, the bar count and
    that the baseline stays on daily closes."""
    counts = {s: len(p.bars.closes) for s, p in panels.items() if p.bars is not None}
    if not counts:
        return "daily closes"
    return (
        f"intraday bars: a decision on every bar of the range's sessions, executed at the next bar "
        f"({sum(counts.values())} bar(s) in the panels of {len(counts)} sector(s)); P&L summed per session; "
        f"the baseline trades the daily closes"
    )


def default_strategies(strategy: Strategy, settings: WalkForwardSettings) -> list[StrategyPlugin]:
    """The legacy walk-forward's strategies: ``strategy`` as ``default`` (and ``default_gru`` with
    the GRU gate) beside the classical baseline of ``settings.baseline_*`` as ``baseline``."""
    return [
        GarchGruStrategy("default", strategy.strategy()),
        BaselineStrategy("baseline", BaselineParams.from_settings(settings)),
    ]


def with_reference(strategies: Sequence[StrategyPlugin], settings: WalkForwardSettings) -> list[StrategyPlugin]:
    """``strategies`` with the classical baseline (of ``settings.baseline_*``, named ``baseline``)
    appended when none of them is a reference: every result is shown beside it."""
    out = list(strategies)
    if not any(getattr(s, "reference", False) for s in out):
        out.append(BaselineStrategy("baseline", BaselineParams.from_settings(settings)))
    return out


def strategy_histories(strategies: Sequence[StrategyPlugin], settings: WalkForwardSettings) -> dict[str, int]:
    """Strategy name → sessions of bars it reads before the first as-of session (its longest window)."""
    return {s.name: int(s.required_history(settings)) for s in strategies}


def required_history(strategy: Strategy | Sequence[StrategyPlugin], settings: WalkForwardSettings) -> int:
    """Sessions of bars needed before the first as-of session: the longest window the run reads.

    Parameters
    ----------
    strategy : Strategy or sequence of StrategyPlugin
        The legacy run's strategy settings (beside the baseline of ``settings.baseline_*``), or the
        strategies a run walks forward (the baseline added when absent, :func:`with_reference`).
    settings : WalkForwardSettings

    Returns
    -------
    int
    """
    plugins = (
        with_reference(strategy, settings) if isinstance(strategy, Sequence) else default_strategies(strategy, settings)
    )
    return max(strategy_histories(plugins, settings).values())


def _check_range(
    panel: SectorPanel, sessions: pd.DatetimeIndex, histories: dict[str, int], end: pd.Timestamp, next_session
) -> None:
    index = panel.closes.index
    if sessions.empty:
        raise WalkForwardError(
            f"sector {panel.sector}: the range holds no session of the bars ({index[0].date()} → {index[-1].date()})"
        )
    if next_session(index[-1]) <= end:
        raise WalkForwardError(
            f"sector {panel.sector}: the range {sessions[0].date()} → {sessions[-1].date()} lies outside the bars "
            f"({index[0].date()} → {index[-1].date()})"
        )
    first = index.get_loc(sessions[0])
    name, history = max(histories.items(), key=lambda item: item[1])
    if first < history:
        raise WalkForwardError(
            f"sector {panel.sector}: the range starts {sessions[0].date()} but the longest window (strategy "
            f"{name!r}) needs {history} sessions of bars before it and only {first} exist (from "
            f"{index[0].date()}); start later or load older bars"
        )


def run_walk_forward(
    panels: dict[str, SectorPanel],
    symbols_by_sector: dict[str, Sequence[str]],
    next_session: Callable[[pd.Timestamp], pd.Timestamp],
    strategy: Strategy | None,
    settings: WalkForwardSettings,
    *,
    models_for=None,
    entry_gate=None,
    formation_of=None,
    progress: Callable[[int], None] | None = None,
    ledger: Sequence[Trial] = (),
    session_number: Callable[[pd.Timestamp], int] | None = None,
    strategies: Sequence[StrategyPlugin] | None = None,
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
    strategy : Strategy or None
        The legacy run's strategy settings (with ``strategies`` None): walked forward as ``default``
        (and ``default_gru``) beside ``baseline`` (:func:`default_strategies`). Ignored with
        ``strategies``.
    settings : WalkForwardSettings
    models_for, entry_gate : callable, optional
        The GRU stage and gate (see :func:`~pairs_assets.quant.walkforward.replay.build_configs`
        and :func:`~pairs_assets.quant.walkforward.replay.trade_configs`).
    formation_of : callable or mapping of str to callable, optional
        The formation session of an as-of session: one calendar for every strategy, or one per
        strategy name (:meth:`~pairs_assets.strategies.base.StrategyPlugin.formation_calendar`).
    progress : callable, optional
        ``progress(n)`` is called as as-of sessions are done.
    ledger : sequence of Trial
        The trials recorded so far on ``settings.selection``
        (:func:`~pairs_assets.quant.walkforward.ledger.trials_from_runs`); this run's own are added.
    session_number : callable, optional
        The exchange-session number of a session from a fixed epoch: anchors the baseline's
        trading periods to the calendar (see :mod:`~pairs_assets.quant.walkforward.baseline`);
        None: they start at the range start.
    strategies : sequence of StrategyPlugin, optional
        The strategies to walk forward side by side, in this order (rows ordered so); the classical
        baseline is appended when none is a reference (:func:`with_reference`).

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    WalkForwardError
        A range outside the bars or shorter than the longest window (naming the strategy), two
        strategies reporting one label.
    """
    if strategies is None:
        plugins = default_strategies(strategy, settings)  # a Dagster resource passed in is unwrapped
    else:
        plugins = with_reference(strategies, settings)
    labels = strategy_labels(plugins, settings)
    sectors = list(panels)
    if not sectors:
        raise WalkForwardError("no sector to walk forward")
    histories = strategy_histories(plugins, settings)
    for sector in sectors:
        panel = panels[sector]
        _check_range(panel, _range_sessions(panel, settings), histories, pd.Timestamp(settings.end), next_session)
    calendars = formation_of if isinstance(formation_of, dict) else {p.name: formation_of for p in plugins}
    workers = min(settings.workers or os.cpu_count() or 1, len(sectors))
    anchors = {s: None if session_number is None else int(session_number(panels[s].closes.index[0])) for s in sectors}
    jobs = [(panels[s], tuple(symbols_by_sector[s]), next_session, plugins, settings, calendars) for s in sectors]
    if workers > 1 and models_for is None and entry_gate is None:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_run_sector_in_worker, *job, anchors[job[0].sector]): job[0].sector for job in jobs}
            outcomes = {}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                if progress is not None:
                    progress(outcomes[futures[future]].n_sessions)
    else:
        outcomes = {
            job[0].sector: _run_sector(
                *job,
                models_for=models_for,
                entry_gate=entry_gate,
                progress=progress,
                anchor=anchors[job[0].sector],
            )
            for job in jobs
        }
    daily_frames, trade_frames = [], []
    configs_built, config_pairs, seconds, gru_counts = {}, {}, {}, {}
    totals: dict[tuple[str, float], list[tuple[pd.DataFrame, pd.DataFrame]]] = {}
    executed: dict[tuple[str, str, float], tuple[pd.DataFrame, pd.DataFrame]] = {}
    for sector in sectors:
        outcome = outcomes[sector]
        configs_built[sector], config_pairs[sector], seconds[sector] = (
            outcome.configs,
            outcome.pair_days,
            outcome.seconds,
        )
        if outcome.gru:
            gru_counts[sector] = outcome.gru
        for (name, cost), (daily, trades) in outcome.executions.items():
            executed[(name, sector, cost)] = (daily, trades)
            daily_frames.append(
                daily.rename_axis("session").reset_index().assign(strategy=name, sector=sector, cost_bp=cost)
            )
            trade_frames.append(trades.assign(cost_bp=cost))
            totals.setdefault((name, cost), []).append((daily, trades))
    for (name, cost), parts in totals.items():
        scale = 1.0 / len(parts) if labels[name].combine_sectors == "mean" else 1.0
        summed = _sum_daily([d for d, _ in parts])
        daily = summed * scale
        daily["n_positions"] = summed["n_positions"]  # a count, not scaled
        trades = pd.concat([t for _, t in parts], ignore_index=True)
        trades = trades.assign(pnl=trades["pnl"] * scale)
        executed[(name, "all", cost)] = (daily, trades)
        daily_frames.append(
            daily.rename_axis("session").reset_index().assign(strategy=name, sector="all", cost_bp=cost)
        )
    trials = count_trials(ledger, _current_trials(plugins, labels, settings, executed), override=settings.n_trials)
    reference = next(label for label, plugin in labels.items() if plugin.reference)
    rows, t_summary = [], time.perf_counter()
    for (name, sector, cost), (daily, trades) in executed.items():
        plugin = labels[name]
        rows.extend(
            _summary_rows(
                name,
                sector,
                cost,
                daily,
                trades,
                settings,
                trials,
                None if name == reference else executed.get((reference, sector, cost)),
                selected=plugin.selected,
            )
        )
    seconds["summary"] = round(time.perf_counter() - t_summary, 2)  # the bootstrap intervals are most of it
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    # strategy (in the strategies' order), sector (the total first), cost, period (full first), as given otherwise
    strategy_rank = {label: i for i, label in enumerate(labels)}
    sector_rank = {s: i for i, s in enumerate(["all", *sectors])}
    period_rank = {p: i for i, p in enumerate(["full", *[label for label, _, _ in settings.periods]])}
    summary = (
        summary.assign(
            _s=summary["strategy"].map(strategy_rank),
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
        settings,
        summary,
        daily_all,
        trades_all,
        configs_built,
        config_pairs,
        seconds,
        gru_counts,
        study,
        evidence,
        trials,
        bars_traded(panels),
    )


def strategy_labels(plugins: Sequence[StrategyPlugin], settings: WalkForwardSettings) -> dict[str, StrategyPlugin]:
    """Row label → its strategy, in the strategies' order; two strategies of one name or label refused."""
    out: dict = {}
    for plugin in plugins:
        takes_settings = bool(inspect.signature(plugin.labels).parameters)
        labels = plugin.labels(settings) if takes_settings else plugin.labels()
        for label in labels:
            if label in out:
                raise WalkForwardError(
                    f"strategies {out[label].name!r} and {plugin.name!r} both report rows labelled {label!r}; "
                    "give them different names"
                )
            out[label] = plugin
    return out


def _range_sessions(panel: SectorPanel, settings: WalkForwardSettings) -> pd.DatetimeIndex:
    index = panel.closes.index
    return index[(index >= pd.Timestamp(settings.start)) & (index <= pd.Timestamp(settings.end))]


@dataclass
class _SectorOutcome:
    configs: int
    pair_days: int
    n_sessions: int
    executions: dict  # (label, cost) → (daily, trades)
    study: pd.DataFrame
    seconds: float
    gru: dict  # GRU gate counts: trained, skipped, allowed, vetoed (empty without the gate)


def _run_sector_in_worker(panel, symbols, next_session, plugins, settings, calendars, anchor=None) -> _SectorOutcome:
    if settings.gru:
        import torch

        torch.set_num_threads(1)  # one process per core already
    return _run_sector(panel, symbols, next_session, plugins, settings, calendars, anchor=anchor)


def _run_sector(
    panel,
    symbols,
    next_session,
    plugins,
    settings,
    calendars: dict | None = None,
    *,
    models_for=None,
    entry_gate=None,
    progress=None,
    anchor=None,
) -> _SectorOutcome:
    """One sector: every strategy's trades, executed at every cost, in the strategies' order."""
    t0 = time.perf_counter()
    index = panel.closes.index
    sessions = _range_sessions(panel, settings)
    first = index.get_loc(sessions[0])
    as_of = index[first - 1 : index.get_loc(sessions[-1])]  # the config for as-of D applies at D+1
    effective = list(index[first : first + len(as_of)])
    if len(effective) < len(as_of):
        effective.append(next_session(as_of[-1]))
    executions, studies, gru = {}, [], {}
    configs = pair_days = 0
    for i, plugin in enumerate(plugins):
        ctx = SectorContext(
            panel=panel,
            symbols=tuple(symbols),
            sessions=sessions,
            as_of=as_of,
            effective=effective,
            settings=settings,
            next_session=next_session,
            formation_of=(calendars or {}).get(plugin.name),
            anchor=anchor,
            models_for=models_for,
            entry_gate=entry_gate,
            progress=progress if i == 0 else None,  # the sector's sessions counted once
        )
        result = plugin.walk_forward_sector(ctx)
        for label, by_cost in result.executions.items():
            for cost in settings.costs:
                executions[(label, cost)] = by_cost[cost]
        configs += result.configs
        pair_days += result.pair_days
        if result.study is not None and len(result.study):
            studies.append(result.study)
        if result.gru:
            gru[plugin.name] = result.gru
    return _SectorOutcome(
        configs=configs,
        pair_days=pair_days,
        n_sessions=len(as_of),
        executions=executions,
        study=pd.concat(studies, ignore_index=True) if len(studies) > 1 else studies[0] if studies else pd.DataFrame(),
        seconds=round(time.perf_counter() - t0, 2),
        gru=next(iter(gru.values())) if len(gru) == 1 else gru,  # one gated strategy: its counts
    )


def run_baseline(
    closes: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    settings: WalkForwardSettings,
    sector: str = "",
    anchor: int | None = None,
) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
    """The classical baseline of one sector over ``sessions``, executed at every cost.

    Parameters
    ----------
    closes : DataFrame
        The sector's closes: the range and the history before it (contiguous sessions).
    sessions : DatetimeIndex
        The range.
    settings : WalkForwardSettings
        ``baseline_*``, ``costs`` and ``lag``.
    sector : str
    anchor : int, optional
        Exchange-session number of ``closes.index[0]`` from a fixed epoch. Given, the trading
        periods are anchored to the calendar and the period under way at the range start is traded
        from its own start on the bars before the range; only the range's sessions are kept (daily
        P&L from the first session, trades executed from it on), so every session gets the position
        and P&L any longer run over it gives. None: the first period starts at the range start.

    Returns
    -------
    dict of float to (daily, trades)
        Per cost, :func:`~pairs_assets.quant.walkforward.execution.execute`'s frames.
    """
    params = BaselineParams.from_settings(settings)
    return baseline_executions(closes, sessions, params, settings.costs, settings.lag, sector, anchor)


def _sum_daily(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = frames[0].copy()
    for frame in frames[1:]:
        out = out.add(frame, fill_value=0.0)
    return out


def _current_trials(plugins, labels: dict, settings: WalkForwardSettings, executed) -> list[Trial]:
    """This run's configurations (every selected strategy's labels) as trials, when it evaluated the
    selection range."""
    label = evaluated_label(settings.start, settings.end, settings.periods, settings.selection)
    if label is None:
        return []
    first, last = (
        (settings.start, settings.end) if label == "full" else next(p[1:] for p in settings.periods if p[0] == label)
    )
    trade = {"lag": settings.lag, "on_drop": settings.on_drop, "max_holding": settings.max_holding}
    out = []
    for variant, plugin in labels.items():
        if not plugin.selected:
            continue
        sharpe = {}
        for (name, sector, cost), (daily, trades) in executed.items():
            if name == variant and sector == "all":
                days = daily.loc[(daily.index >= pd.Timestamp(first)) & (daily.index <= pd.Timestamp(last)), "pnl"]
                std = float(days.std(ddof=1)) if len(days) >= 2 else 0.0
                never = std == 0.0 and len(trades) == 0  # never traded: a trial that earned nothing
                sharpe[float(cost)] = (
                    float(days.mean()) / std * 252**0.5 if std > 0.0 else 0.0 if never else float("nan")
                )
        if sharpe:
            out.append(Trial(trial_key(plugin.trial_params(), trade, variant), sharpe))
    return out


def _overlaps(first, last, selection) -> bool:
    return pd.Timestamp(first) <= pd.Timestamp(selection[1]) and pd.Timestamp(last) >= pd.Timestamp(selection[0])


def _summary_rows(
    name: str,
    sector: str,
    cost: float,
    daily: pd.DataFrame,
    trades: pd.DataFrame,
    settings,
    trials: TrialCount,
    baseline,
    *,
    selected: bool = True,
) -> list[list]:
    """The full range and every sub-period overlapping it: SUMMARY_COLUMNS. ``baseline``: the
    reference's (daily, trades) at this sector and cost (None for the reference itself);
    ``selected``: whether the strategy is a trial (the baseline, fixed in advance, is not)."""
    ours = selected
    variance = trials.variance.get(float(cost), float("nan"))
    options = {
        "n_trials": trials.n_trials,
        "sharpe_variance": variance if variance == variance else None,
        "block": settings.bootstrap_block,
        "n_boot": settings.bootstrap_resamples,
        "seed": settings.bootstrap_seed,
    }
    bounds = {"full": (settings.start, settings.end)}
    stats = {
        "full": summarize(
            daily, trades, selected=ours and _overlaps(settings.start, settings.end, settings.selection), **options
        )
    }
    # only the sub-periods that overlap the range
    periods = [tuple(p) for p in settings.periods if _overlaps(p[1], p[2], (settings.start, settings.end))]
    bounds.update({p[0]: (p[1], p[2]) for p in periods})
    stats.update(
        by_period(
            daily,
            trades,
            periods,
            selected=lambda first, last: ours and _overlaps(first, last, settings.selection),
            **options,
        )
    )
    rows = []
    for label, row in stats.items():
        diff = (float("nan"),) * 3
        if baseline is not None:
            first, last = (pd.Timestamp(b) for b in bounds[label])
            days = (daily.index >= first) & (daily.index <= last)
            base = baseline[0]
            base_days = (base.index >= first) & (base.index <= last)
            diff = sharpe_difference(
                daily.loc[days, "pnl"],
                base.loc[base_days, "pnl"],
                settings.bootstrap_block,
                settings.bootstrap_resamples,
                settings.bootstrap_seed,
            )
        deflated = row["deflated_sharpe"] == row["deflated_sharpe"]
        rows.append(
            [
                name,
                sector,
                cost,
                label,
                *[row[k] for k in SUMMARY_KEYS],
                *diff,
                trials.n_trials if deflated else float("nan"),
                trials.source if deflated else "",
                trials.sharpe_sd(cost) if deflated else float("nan"),
                bool(row["trades"] < settings.min_trades),
            ]
        )
    return rows
