"""A high-level strategy base: re-select pairs every ``every`` sessions, trade them by the one rule.

A subclass of :class:`PeriodicStrategy` implements one method, :meth:`PeriodicStrategy.select`
(a formation window of closes → its pairs, :data:`PAIR_COLUMNS`, best first) and gets:

* :meth:`~PeriodicStrategy.pipeline` — two daily stages (:func:`periodic_pipeline`):
  ``selected_pairs`` (``select`` on the ``formation`` sessions ending at the partition's formation
  session) and ``trading_config`` (per as-of session, the
  :class:`~pairs_assets.quant.config_model.TradingConfig` of its formation's pairs with the
  strategy's levels and sizing, written atomically as JSON under
  ``<outputs_dir>/<strategy>/trading_config/<date>/<sector>.json`` and recorded in the store under
  the strategy's name). The Dagster layer generates their assets under the strategy's key prefix
  (:func:`pairs_assets.assets.strategy_assets.plugin_assets`).
* :meth:`~PeriodicStrategy.walk_forward_sector` — the same ``select`` on windows sliced from the
  sector's panel at the same formation sessions, the same configs, traded by
  :func:`pairs_assets.quant.walkforward.replay.trade_configs` (the one rule, with the class's
  :attr:`~PeriodicStrategy.on_drop` and :attr:`~PeriodicStrategy.max_holding`), executed by
  :meth:`~pairs_assets.strategies.base.SectorContext.execute`.

Formation sessions are calendar-anchored: every ``every``-th exchange session counted from
:data:`pairs_assets.quant.stages.FORMATION_EPOCH`, shifted by ``phase``
(:class:`pairs_assets.quant.stages.FormationSchedule`), so the daily graph and the walk-forward pick
the same formation session for an as-of session, whatever range is run. The daily graph's config
and the walk-forward's config of one (as-of session, sector) are equal, field for field.

Nothing here imports Dagster.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pairs_assets.errors import InsufficientHistoryError, MissingBarsError
from pairs_assets.quant.config_model import SCHEMA_VERSION, SPREAD_STD_MIN, TradingConfig
from pairs_assets.quant.pipeline.primitives import fingerprint_of
from pairs_assets.quant.pipeline.spec import (
    CheckDef,
    Json,
    Partition,
    PathValue,
    Pipeline,
    PipelineError,
    StageOutput,
    StageRun,
    StageSpec,
    md_table,
)
from pairs_assets.quant.walkforward.replay import trade_configs
from pairs_assets.strategies.base import SectorContext, SectorResult, StrategyPlugin

if TYPE_CHECKING:
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings

__all__ = [
    "PAIR_COLUMNS",
    "PeriodicHistoryError",
    "PeriodicParams",
    "PeriodicStageError",
    "PeriodicStrategy",
    "periodic_config",
    "periodic_pipeline",
    "trading_config_path",
]

#: What :meth:`PeriodicStrategy.select` returns, one row per pair, best first (extra columns kept).
PAIR_COLUMNS = ["pair_id", "y", "x", "hedge_ratio", "intercept", "spread_mean", "spread_std"]
#: The two stages of a periodic pipeline.
SELECTED_PAIRS, TRADING_CONFIG = "selected_pairs", "trading_config"


class PeriodicStageError(PipelineError):
    """A stage of a strategy's pipeline produced what it must not (a select() frame without its
    columns, a leg not in the window, …): one line naming the strategy, the stage and the partition."""


class PeriodicHistoryError(InsufficientHistoryError):
    """A stage's window reaches before the bars: names the strategy, the stage and the window."""


class PeriodicParams(BaseModel):
    """The parameters every periodic strategy has (subclass it to add a strategy's own).

    Attributes
    ----------
    formation : int
        Sessions of closes ``select`` reads, ending at (and including) the formation session.
    every : int
        Sessions between two formations (1: every session re-selects).
    phase : int
        Which of the ``every`` phases of the formation calendar (0 ≤ phase < every).
    max_pairs : int
        At most this many of ``select``'s rows are traded; each pair trades ``1/max_pairs`` of the
        sector's capital per leg.
    entry_z, exit_z, stop_z : float
        The rule's levels in spread z (exit_z < entry_z < stop_z).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    formation: int = Field(
        252, ge=2, le=5000, description="Sessions of the formation window (ending at the formation session)."
    )
    every: int = Field(21, ge=1, le=1000, description="Sessions between two formations.")
    phase: int = Field(0, ge=0, description="Phase of the formation calendar (0 <= phase < every).")
    max_pairs: int = Field(5, ge=1, le=1000, description="Pairs traded per sector, the first rows of select().")
    entry_z: float = Field(2.0, gt=0.0, lt=1e6, description="Open when |z| reaches this.")
    exit_z: float = Field(0.0, ge=0.0, lt=1e6, description="Close when z crosses back to this.")
    stop_z: float = Field(4.0, gt=0.0, le=1e6, description="Close (stop) when |z| reaches this.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.phase >= self.every:
            raise ValueError(f"phase must be below every, got phase {self.phase} with every {self.every}")
        if not self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(
                f"levels need exit_z < entry_z < stop_z, got {self.exit_z:g}, {self.entry_z:g}, {self.stop_z:g}"
            )
        return self

    # what the stage factory and range runs read (the names of the default strategy's settings)
    @property
    def reselect_every(self) -> int:
        return self.every

    @property
    def formation_phase(self) -> int:
        return self.phase

    def reach(self, window: int) -> int:
        """Sessions back from an as-of session that a ``window`` ending at its formation session spans."""
        return window + self.every - 1


def trading_config_path(outputs_dir, strategy: str, as_of: str, sector: str) -> Path:
    """``<outputs_dir>/<strategy>/trading_config/<as_of>/<sector>.json``."""
    return Path(outputs_dir) / strategy / TRADING_CONFIG / as_of / f"{sector}.json"


def _iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


def periodic_config(
    pairs: pd.DataFrame,
    *,
    strategy: str,
    as_of,
    effective,
    sector: str,
    params: PeriodicParams,
    formation_session,
    symbols: Sequence[str],
    source: str,
    fingerprint: str,
    closing: bool = False,
) -> TradingConfig:
    """The trading config of ``pairs`` (:data:`PAIR_COLUMNS`, at most ``max_pairs`` rows, best first)
    for as-of ``as_of``: the rule's spread ``ln y − hedge_ratio·ln x − intercept``, its z against
    ``spread_mean``/``spread_std``, the params' levels, ``1/max_pairs`` of the capital per leg.
    ``closing``: no pair (the rule closes every open position, with ``on_drop="exit"``)."""
    as_of, effective, formation = _iso(as_of), _iso(effective), _iso(formation_session)
    fraction = 1.0 / params.max_pairs
    levels = {"entry_z": float(params.entry_z), "exit_z": float(params.exit_z), "stop_z": float(params.stop_z)}
    entries = []
    for rank, row in enumerate(() if closing else pairs.to_dict("records"), start=1):
        correlation = row.get("correlation")
        entries.append(
            {
                "pair_id": str(row["pair_id"]),
                "y": str(row["y"]),
                "x": str(row["x"]),
                "hedge_ratio": float(row["hedge_ratio"]),
                "intercept": float(row["intercept"]),
                "spread_mean": float(row["spread_mean"]),
                "spread_std": float(row["spread_std"]),
                "half_life": None,
                "correlation": None if correlation is None or pd.isna(correlation) else float(correlation),
                "eg_pvalue": None,
                "garch": dict.fromkeys(
                    ["mu", "omega", "alpha", "beta", "persistence", "sigma_forecast", "unconditional_sigma"]
                ),
                "levels": levels,
                "sizing": {
                    "y_fraction": fraction,
                    "x_fraction": fraction,
                    "gross_fraction": 2.0 * fraction,
                    "pair_vol_target": None,
                    "expected_daily_vol": None,
                },
                "scores": dict.fromkeys(
                    ["aic_score", "forecast_score", "backtest_score", "diagnostic_score", "composite"]
                )
                | {"rank": rank},
                "model": None,
                "model_note": f"strategy {strategy}: selected at the formation session {formation}, no model",
            }
        )
    return TradingConfig.parse(
        {
            "schema_version": SCHEMA_VERSION,
            "as_of_session": as_of,
            "effective_session": effective,
            "formation_session": formation if formation != as_of else None,
            "sector": sector,
            "source": source,
            "symbols": sorted(symbols),
            "input_fingerprint": fingerprint_of(fingerprint, strategy, params.model_dump(mode="json")),
            "gru_gate": False,
            "thresholds": {"correlation_min": -1.0, "eg_pvalue_max": 1.0, "score_min": 0.0},
            "windows": {"formation": int(params.formation), "garch": 0, "backtest": 0, "gru": 0},
            "risk": {"max_portfolio_risk": 1.0, "max_position": fraction, "target_daily_vol": 0.0},
            "pairs": entries,
        },
        where=f"strategy {strategy!r} trading config {as_of}|{sector}",
    )


# --- the two daily stages -------------------------------------------------------------------------------
#: select(window, params, where) -> pairs frame; config(pairs, as_of=, effective=, sector=, params=,
#: formation_session=, symbols=, source=, fingerprint=, closing=) -> TradingConfig
SelectFn = Callable[[pd.DataFrame, Any, str], pd.DataFrame]
ConfigFn = Callable[..., TradingConfig]


def _formation_window(name: str, stage: str, p: Partition, params, symbols):
    """The formation window of partition ``p`` read through its window reader; a window reaching
    before the bars is one error naming the strategy, the stage and the window."""
    key = f"{p.date}|{p.sector}"
    formation_day = p.windows.formation_session(p.date, params.reselect_every, params.formation_phase)
    try:
        window = p.windows.read(symbols, formation_day, params.formation, partition=key)
    except (InsufficientHistoryError, MissingBarsError) as exc:
        raise type(exc)(
            f"strategy {name!r}, stage {stage}, partition {key}: the formation window of {params.formation} sessions "
            f"ending {formation_day.date()}: {exc}"
        ) from None
    return formation_day, window


#: How far a pair's spread_std may be from its formation spread's σ (relative): ddof 0 and 1 differ
#: by under 1% on a 60-session window; a σ of another window or of prices, not log prices, is far off.
SPREAD_STD_TOLERANCE = 0.02

#: The checks of every periodic strategy's ``selected_pairs`` (evaluated by
#: :func:`pairs_assets.checks.periodic_pairs_results`).
PERIODIC_CHECKS = (
    CheckDef(
        "spread_std_matches_window",
        "Every pair's spread_std is the σ of its spread ln y − β·ln x − intercept over the formation window "
        f"(within {SPREAD_STD_TOLERANCE:.0%}, either ddof): the z the rule trades is measured in it.",
        True,
    ),
    CheckDef("legs_close_at_formation", "Every selected leg has a close at the formation session.", False),
)


def periodic_pipeline(
    name: str,
    select: SelectFn,
    config: ConfigFn,
    *,
    close_at_period_end: bool = False,
    select_description: str = "",
) -> Pipeline:
    """The two-stage pipeline of strategy ``name``: ``selected_pairs`` (``select`` at each formation
    session) → ``trading_config`` (``config`` per as-of session, written and recorded as ``name``'s).

    The stages read their parameters from ``run.strategy`` (the strategy's params: ``formation``,
    ``reselect_every``, ``formation_phase``, ``reach``), so a run's params (the launchpad's) apply.
    ``close_at_period_end``: the as-of session before the next formation session gets a config with
    no pair (the rule then closes every position at the period's end).
    """

    def selected_partition(run: StageRun, p: Partition) -> StageOutput:
        params = run.strategy
        symbols = p.windows.universe.symbols(p.sector)
        formation_day, window = _formation_window(name, SELECTED_PAIRS, p, params, symbols)
        pairs = select(window.closes, params, f"partition {p.date}|{p.sector}")
        return StageOutput(
            pairs,
            check_args=(pairs, window.closes),
            metadata={
                "window": window.label,
                "formation_session": str(formation_day.date()),
                "symbols": ", ".join(symbols),
                "pairs": len(pairs),
                "note": "no pair selected in this window" if pairs.empty else f"{len(pairs)} pair(s) selected",
                "top_pairs": md_table(pairs),
                "input_fingerprint": window.fingerprint,
            },
        )

    def config_partition(run: StageRun, p: Partition) -> StageOutput:
        params, store, home = run.strategy, run.resources["store"], run.resources["home"]
        source = run.resources["bar_source"].source_name
        symbols = sorted(p.windows.universe.symbols(p.sector))
        formation_day, window = _formation_window(name, TRADING_CONFIG, p, params, symbols)
        effective = p.windows.next_session(p.date)
        closing = close_at_period_end and (
            p.windows.formation_session(effective, params.reselect_every, params.formation_phase) == effective
        )
        trading_config = config(
            p.inputs[SELECTED_PAIRS],
            as_of=p.date,
            effective=effective,
            sector=p.sector,
            params=params,
            formation_session=formation_day,
            symbols=symbols,
            source=source,
            fingerprint=window.fingerprint,
            closing=closing,
        )
        document = trading_config.document()
        path = str(trading_config_path(home.outputs_dir, name, p.date, p.sector))
        run.ensure_open(f"write {name}'s trading config {p.date}|{p.sector}")
        run.write_bytes(path, trading_config.to_json_bytes())
        store.write_trading_config(document, path, strategy=name)
        return StageOutput(
            document,
            {
                "path": PathValue(path),
                "strategy": name,
                "as_of_session": p.date,
                "effective_session": document["effective_session"],
                "pairs": len(document["pairs"]),
                "note": "no pair: trade nothing in this sector"
                if not document["pairs"]
                else f"{len(document['pairs'])} pair(s) to trade",
                "window": window.label,
                "input_fingerprint": document["input_fingerprint"],
                "schema_version": SCHEMA_VERSION,
                "document": Json(document),
            },
        )

    def detail(s) -> str:
        return f"{s.formation} sessions (formation) ending at its formation session, every {s.reselect_every}"

    return Pipeline(
        name,
        [
            StageSpec(
                name=SELECTED_PAIRS,
                inputs=(),
                window=lambda s: s.formation,
                window_detail=detail,
                compute=selected_partition,
                checks=PERIODIC_CHECKS,
                evaluate_checks="pairs_assets.checks:periodic_pairs_results",
                range_summary=lambda run, values, counts: {"pairs": sum(len(v) for v in values.values())},
                kinds=frozenset({"pandas", "parquet"}),
                description=f"Strategy {name}: the pairs selected on the formation window"
                + (f" ({select_description})" if select_description else "")
                + ": pair_id, y, x, hedge ratio, intercept, spread mean and σ, best first.",
            ),
            StageSpec(
                name=TRADING_CONFIG,
                inputs=(SELECTED_PAIRS,),
                window=lambda s: s.formation,
                window_detail=detail,
                compute=config_partition,
                range_summary=lambda run, values, counts: {
                    "pairs": sum(len(d["pairs"]) for d in values.values()),
                    "schema_version": SCHEMA_VERSION,
                },
                per_session=True,
                stores_output=False,
                kinds=frozenset({"json"}),
                description=f"Strategy {name}: the next session's trading config (its formation's pairs, levels "
                "and sizing), written as JSON and recorded in the store under the strategy's name.",
            ),
        ],
    )


# --- the base class -------------------------------------------------------------------------------------
class PeriodicStrategy(StrategyPlugin):
    """Subclass, implement :meth:`select` (and set :attr:`Params` to a :class:`PeriodicParams`
    subclass for parameters of your own); see the module docstring."""

    Params: ClassVar[type[BaseModel]] = PeriodicParams
    #: how the one rule trades its configs (walk-forward and live): a pair that leaves the config
    #: is kept (``"keep"``) or closed (``"exit"``); the holding limit in sessions (0: none)
    on_drop: ClassVar[str] = "keep"
    max_holding: ClassVar[int] = 20
    #: the config of the as-of session before each formation session lists no pair
    close_at_period_end: ClassVar[bool] = False

    @abstractmethod
    def select(self, closes_window: pd.DataFrame, params) -> pd.DataFrame:
        """The pairs of one formation window, best first.

        Parameters
        ----------
        closes_window : DataFrame
            ``params.formation`` sessions (ending at the formation session) × the sector's symbols
            (sorted), daily closes.
        params : PeriodicParams
            This strategy's params (of its :attr:`Params` class).

        Returns
        -------
        DataFrame
            :data:`PAIR_COLUMNS` (extra columns kept; ``correlation`` is recorded in the config),
            one row per pair, best first; empty: nothing to trade.
        """

    def select_pairs(self, closes_window: pd.DataFrame, params, where: str = "") -> pd.DataFrame:
        """:meth:`select`, its frame checked (:class:`PeriodicStageError` naming the strategy, the stage
        and ``where``) and cut to ``max_pairs`` rows."""
        prefix = f"strategy {self.name!r}, stage {SELECTED_PAIRS}" + (f", {where}" if where else "")
        pairs = self.select(closes_window, params)
        if not isinstance(pairs, pd.DataFrame):
            raise PeriodicStageError(f"{prefix}: select() returned {type(pairs).__name__}, not a DataFrame")
        missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
        if missing:
            raise PeriodicStageError(f"{prefix}: select() returned no column(s) {', '.join(missing)}")
        pairs = pairs.head(params.max_pairs).reset_index(drop=True)
        symbols = {str(s) for s in closes_window.columns}
        for row in pairs.itertuples(index=False):
            if str(row.y) not in symbols or str(row.x) not in symbols or row.y == row.x:
                raise PeriodicStageError(
                    f"{prefix}: pair {row.pair_id}: legs {row.y}, {row.x} not two symbols of the window"
                )
            values = [row.hedge_ratio, row.intercept, row.spread_mean, row.spread_std]
            if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values):
                raise PeriodicStageError(f"{prefix}: pair {row.pair_id}: non-finite hedge_ratio/intercept/spread")
            if row.spread_std < SPREAD_STD_MIN:
                raise PeriodicStageError(
                    f"{prefix}: pair {row.pair_id}: spread_std {row.spread_std!r} below {SPREAD_STD_MIN:g}"
                )
        if pairs["pair_id"].duplicated().any():
            raise PeriodicStageError(
                f"{prefix}: select() returned pair_id {pairs['pair_id'][pairs['pair_id'].duplicated()].iloc[0]} twice"
            )
        return pairs

    def config(self, pairs: pd.DataFrame, **kwargs) -> TradingConfig:
        """The trading config of ``pairs`` (:func:`periodic_config`; override for other config fields)."""
        return periodic_config(pairs, strategy=self.name, **kwargs)

    def pipeline(self) -> Pipeline:
        return periodic_pipeline(
            self.name,
            self.select_pairs,
            self.config,
            close_at_period_end=self.close_at_period_end,
            select_description=type(self).summary,
        )

    def required_history(self, settings: WalkForwardSettings) -> int:
        """The formation window ending up to ``every − 1`` sessions before the range's first as-of
        session (the session before its first session)."""
        return self.params.formation + self.params.every

    def configs(self, ctx: SectorContext) -> dict[pd.Timestamp, TradingConfig]:
        """The config of every as-of session of ``ctx`` (keyed by it), from windows sliced from the
        panel at the calendar's formation sessions."""
        p = self.params
        closes = ctx.panel.closes
        index = closes.index
        symbols = sorted(ctx.symbols)
        anchor = ctx.anchor if ctx.anchor is not None else _session_number(index[0])
        pairs_at: dict[int, pd.DataFrame] = {}
        configs: dict[pd.Timestamp, TradingConfig] = {}
        for as_of, effective in zip(ctx.as_of, ctx.effective):
            pos = index.get_loc(as_of)
            f = pos - (pos + anchor - p.phase) % p.every
            if f not in pairs_at:
                if f - p.formation + 1 < 0:
                    raise PeriodicHistoryError(
                        f"strategy {self.name!r}, stage {SELECTED_PAIRS}, sector {ctx.sector}: the formation window of "
                        f"{p.formation} sessions ending {index[max(f, 0)].date() if f >= 0 else 'before the bars'} "
                        f"(as-of {pd.Timestamp(as_of).date()}) needs {p.formation} sessions of bars, got "
                        f"{max(f + 1, 0)} (first bar {index[0].date()})"
                    )
                window = closes.iloc[f - p.formation + 1 : f + 1][symbols]
                pairs_at[f] = self.select_pairs(window, p, f"sector {ctx.sector}, formation {index[f].date()}")
            eff = pd.Timestamp(effective)
            closing = self.close_at_period_end and (pos + 1 + anchor - p.phase) % p.every == 0  # eff: pos + 1
            fingerprint = (
                ctx.panel.fingerprint(symbols, f, p.formation)
                if ctx.panel.row_hashes is not None
                else fingerprint_of(self.name, ctx.sector, _iso(index[f]), p.model_dump(mode="json"))
            )
            configs[pd.Timestamp(as_of)] = self.config(
                pairs_at[f],
                as_of=as_of,
                effective=eff,
                sector=ctx.sector,
                params=p,
                formation_session=index[f],
                symbols=symbols,
                source=ctx.panel.source,
                fingerprint=fingerprint,
                closing=closing,
            )
        return configs

    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        """The sector's configs traded by the one rule over ``ctx.sessions``, executed at every cost."""
        configs = self.configs(ctx)
        trades = trade_configs(
            configs,
            ctx.panel.closes,
            ctx.sessions,
            strategy_name=self.name,
            on_drop=self.on_drop,
            max_holding=self.max_holding,
        ).assign(sector=ctx.sector)
        return SectorResult(
            executions={self.name: ctx.execute(trades)},
            configs=len(configs),
            pair_days=sum(len(c.pairs) for c in configs.values()),
        )


def _session_number(day) -> int:
    """Exchange sessions from :data:`~pairs_assets.quant.stages.FORMATION_EPOCH` to ``day`` (negative before)."""
    from pairs_assets.market.calendar import sessions_in_range
    from pairs_assets.quant.stages import FORMATION_EPOCH

    day, epoch = pd.Timestamp(day), pd.Timestamp(FORMATION_EPOCH)
    if day >= epoch:
        return len(sessions_in_range(epoch, day)) - 1
    return -(len(sessions_in_range(day, epoch)) - 1)
