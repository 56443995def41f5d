"""The built-in strategies, registered through the same entry points as any other
(``pyproject.toml``, group ``pairs_assets.strategies``):

* :class:`GarchGruStrategy` (``garch_gru``) — the daily graph's strategy: correlation screen,
  Engle-Granger, GARCH-filtered spreads, the recent backtest's model selection, optionally each
  pair's GRU gate; its parameters are :class:`~pairs_assets.quant.strategy.Strategy` (the defaults:
  today's default);
* :class:`SeedStrategy` (``seed``) — the same stages at the project's first design's settings
  (:data:`~pairs_assets.quant.strategy.PRESETS` ``["seed"]``);
* :class:`BaselineStrategy` (``baseline``) — the classical Engle-Granger baseline
  (:mod:`pairs_assets.quant.walkforward.baseline`), a rule fixed in advance every other strategy is
  compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from pairs_assets.quant.strategy import PRESETS, Strategy
from pairs_assets.quant.walkforward.bars import bars_of_range, execute_on_bars
from pairs_assets.quant.walkforward.baseline import baseline_periods, classical_baseline
from pairs_assets.quant.walkforward.execution import execute
from pairs_assets.quant.walkforward.plugin import SectorContext, SectorResult, StrategyPlugin, WalkForwardError
from pairs_assets.quant.walkforward.replay import trade_configs

__all__ = [
    "BaselineParams",
    "BaselineStrategy",
    "GarchGruStrategy",
    "SeedParams",
    "SeedStrategy",
    "baseline_executions",
    "trade_bars",
]


class GarchGruStrategy(StrategyPlugin):
    """The daily graph's strategy replayed by the walk-forward: every as-of session's trading config
    (:func:`~pairs_assets.quant.walkforward.replay.build_configs`), traded on the daily closes or
    the panel's intraday bars, with and without each pair's GRU gate when the settings ask for it."""

    Params = Strategy
    summary = "correlation screen, Engle-Granger, GARCH-filtered spread, backtest model selection, optional GRU gate"

    @property
    def strategy(self) -> Strategy:
        """The pure strategy model of its parameters."""
        return self.params.strategy()

    def labels(self, settings=None) -> tuple[str, ...]:
        """Its name, and ``<name>_gru`` (the same configs with the GRU's veto) with ``settings.gru``."""
        if settings is not None and settings.gru:
            return (self.name, f"{self.name}_gru")
        return (self.name,)

    def required_history(self, settings) -> int:
        strategy = self.strategy
        windows = [strategy.formation_window, strategy.garch_sessions, strategy.backtest_sessions]
        if settings.gru:
            windows.append(strategy.gru_window)
        # the first configs' formation session may lie up to reselect_every - 1 sessions earlier
        return strategy.reach(max(windows))

    def formation_calendar(self) -> tuple[int, int]:
        return self.strategy.reselect_every, self.strategy.formation_phase

    def trial_params(self) -> dict:
        return self.strategy.model_dump(mode="json")

    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        from pairs_assets.quant.walkforward.replay import build_configs
        from pairs_assets.quant.walkforward.score_study import forward_pnl

        strategy, settings, panel = self.strategy, ctx.settings, ctx.panel
        models_for, entry_gate, gate = ctx.models_for, ctx.entry_gate, None
        if settings.gru and models_for is None:
            from pairs_assets.quant.walkforward.gru_gate import GRUGate

            gate = GRUGate(panel.closes, strategy, ctx.sector)
            models_for, entry_gate = gate.models_for, gate.entry_gate
        scored: list = []
        configs = build_configs(
            panel,
            ctx.as_of,
            ctx.effective,
            ctx.symbols,
            strategy,
            formation_of=ctx.formation_of,
            models_for=models_for,
            progress=ctx.progress,
            scored=scored,
        )
        study_cost = 5.0 if 5.0 in settings.costs else settings.costs[0]
        study = (
            forward_pnl(
                pd.concat(scored, ignore_index=True),
                panel.closes,
                strategy.formation_window,
                horizon=settings.score_horizon,
                lag=settings.lag,
                cost_bp=study_cost,
            ).assign(sector=ctx.sector)
            if scored
            else pd.DataFrame()
        )

        def trade(label: str, gate_fn) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
            if panel.bars is not None:  # intraday: a decision on every bar, P&L summed per session
                return trade_bars(configs, panel, ctx.sessions, settings, label, gate_fn)
            trades = trade_configs(
                configs,
                panel.closes,
                ctx.sessions,
                strategy_name=label,
                on_drop=settings.on_drop,
                max_holding=settings.max_holding,
                entry_gate=gate_fn,
            ).assign(sector=ctx.sector)
            return ctx.execute(trades)

        executions = {self.name: trade(self.name, None if gate is not None else entry_gate)}
        if gate is not None:  # the same configs with and without the GRU's veto, side by side
            executions[f"{self.name}_gru"] = trade(f"{self.name}_gru", entry_gate)
        return SectorResult(
            executions=executions,
            configs=len(configs),
            pair_days=sum(len(c.pairs) for c in configs.values()),
            study=study,
            gru={}
            if gate is None
            else {"trained": gate.trained, "skipped": gate.skipped, "allowed": gate.allowed, "vetoed": gate.vetoed},
        )

    def pipeline(self):
        """Today's six stages (:data:`pairs_assets.quant.pipeline.garch_gru.PIPELINE`): the daily graph
        generates its assets from it and :func:`~pairs_assets.quant.walkforward.replay.build_configs`
        iterates it."""
        from pairs_assets.quant.pipeline.garch_gru import PIPELINE

        return PIPELINE


def _with_defaults(base: type[BaseModel], name: str, defaults: dict) -> type[BaseModel]:
    """``base`` with other defaults (each field's type, bounds and description kept)."""
    fields = {}
    for key, value in defaults.items():
        info = copy(base.model_fields[key])
        info.default = value
        fields[key] = (base.model_fields[key].annotation, info)
    return create_model(name, __base__=base, __module__=__name__, **fields)


#: :class:`~pairs_assets.quant.strategy.Strategy` with the seed design's defaults (``PRESETS["seed"]``).
SeedParams = _with_defaults(Strategy, "SeedParams", PRESETS["seed"])


class SeedStrategy(GarchGruStrategy):
    """The project's first (seed) design: the daily graph's stages at ``PRESETS["seed"]`` (a 60-session
    formation re-selected daily, correlation ≥ 0.8, composite > 0.7, a 1,000-return GARCH window)."""

    Params = SeedParams
    summary = "the seed design: the garch_gru stages re-selected daily on a 60-session formation"


class BaselineParams(BaseModel):
    """The classical Engle-Granger baseline's rule (fixed in advance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    formation: int = Field(252, ge=20, description="Sessions of the formation period (Engle-Granger tests).")
    trading: int = Field(126, ge=1, description="Sessions each formation's pairs are traded.")
    step: int = Field(126, ge=1, description="Sessions between formations.")
    top_n: int = Field(5, ge=1, description="Pairs traded per sector (lowest p-values); each gets 1/top_n.")
    pvalue_max: float = Field(0.05, gt=0.0, lt=1.0, description="Engle-Granger p-value threshold.")
    entry_z: float = Field(2.0, gt=0.0, description="Enter at |z| of the formation spread above this.")
    stop_z: float = Field(4.0, gt=0.0, description="Stop out at |z| above this.")

    @classmethod
    def from_settings(cls, settings) -> BaselineParams:
        """The ``baseline_*`` fields of a :class:`~pairs_assets.quant.walkforward.engine.WalkForwardSettings`."""
        return cls(**{key: getattr(settings, f"baseline_{key}") for key in cls.model_fields})


class BaselineStrategy(StrategyPlugin):
    """The classical baseline (Gatev et al. with Engle-Granger selection): the reference of every
    walk-forward; each sector gives its pairs 1/top_n of the sector's capital, so the total gives each
    of the N sectors 1/N."""

    Params = BaselineParams
    summary = "classical Engle-Granger baseline: top-n pairs per formation, fixed z bands (the reference)"
    combine_sectors = "mean"
    selected = False
    reference = True

    def required_history(self, settings) -> int:
        # the period under way at the range start may have begun up to trading - 1 sessions earlier
        return self.params.formation + self.params.trading

    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        executed = baseline_executions(
            ctx.panel.closes,
            ctx.sessions,
            self.params,
            ctx.settings.costs,
            ctx.settings.lag,
            ctx.sector,
            ctx.anchor,
        )
        return SectorResult(executions={self.name: executed})


def trade_bars(configs, panel, sessions, settings, name, gate_fn) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
    """Trades of ``configs`` on the panel's intraday bars (:mod:`~pairs_assets.quant.walkforward.bars`):
    a decision on every bar, lag = the next bar, the P&L summed per session."""
    try:
        times, bar_sessions = bars_of_range(panel.bars, sessions, panel.sector)
    except ValueError as exc:
        raise WalkForwardError(str(exc)) from None
    trades = trade_configs(
        configs,
        panel.bars.closes,
        times,
        strategy_name=name,
        on_drop=settings.on_drop,
        max_holding=settings.max_holding,
        entry_gate=gate_fn,
        bar_sessions=bar_sessions,
    ).assign(sector=panel.sector)
    return execute_on_bars(trades, panel.bars, times, bar_sessions, sessions, settings.costs, lag=settings.lag)


def baseline_executions(
    closes: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    params,
    costs: Sequence[float],
    lag: int,
    sector: str = "",
    anchor: int | None = None,
) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
    """:func:`~pairs_assets.quant.walkforward.engine.run_baseline` with the rule given as
    :class:`BaselineParams` (formation, trading, step, top_n,
    pvalue_max, entry_z, stop_z)."""
    index = closes.index
    base_sessions = sessions
    if anchor is not None:
        lead = baseline_periods(index, sessions, params.formation, params.trading, params.step, anchor)[0].formation_end
        base_sessions = index[min(lead, index.get_loc(sessions[0])) : index.get_loc(sessions[-1]) + 1]
    trades = classical_baseline(
        closes,
        base_sessions,
        formation=params.formation,
        trading=params.trading,
        step=params.step,
        top_n=params.top_n,
        pvalue_max=params.pvalue_max,
        entry_z=params.entry_z,
        stop_z=params.stop_z,
        sector=sector,
        anchor=anchor,
    )
    out = {}
    for cost in costs:
        result = execute(trades, closes, base_sessions, lag=lag, cost_bp=cost)
        if len(base_sessions) > len(sessions):
            kept = result.trades[result.trades["entry_exec"] >= sessions[0]].reset_index(drop=True)
            out[cost] = (result.daily.loc[sessions[0] :], kept)
        else:
            out[cost] = (result.daily, result.trades)
    return out
