"""The distance method of Gatev, Goetzmann & Rouwenhorst (2006) as a strategy plugin.

The numbers are :mod:`pairs_assets.quant.distance` (normalised prices, SSD, the N closest pairs,
the formation σ, the trading config); this module gives them a parameter schema
(:class:`DistanceParams`), the two stage functions a daily-graph stage spec can call
(:func:`distance_pairs`, :func:`distance_config`) and the walk-forward of one sector
(:meth:`DistanceStrategy.walk_forward_sector`): the config of every session, traded by the one rule
(:func:`pairs_assets.quant.walkforward.replay.trade_configs` with ``on_drop="exit"`` and no
``max_holding``), executed by the shared execution model.

Periods are anchored to the exchange calendar when the context carries an anchor: the trading
period under way at the range's first session is traded from its own first session on the bars
before the range, and only the range's sessions are kept (daily P&L from the first session, trades
whose entry executes in the range) — so every session gets the position and P&L that any longer run
over it gives, as the baseline's
(:func:`pairs_assets.quant.walkforward.engine.run_baseline`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.distance import (
    DISTANCE_COLUMNS,
    distance_periods,
    distance_trading_config,
    select_distance_pairs,
)
from pairs_assets.quant.walkforward.replay import fingerprint_of, trade_configs
from pairs_assets.strategies.base import SectorContext, SectorResult, StrategyPlugin

if TYPE_CHECKING:
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings

__all__ = ["DistanceParams", "DistanceStrategy", "distance_config", "distance_pairs"]


class DistanceParams(BaseModel):
    """The distance method's parameters (GGR's defaults).

    Attributes
    ----------
    formation : int
        Sessions of the formation window (252: twelve months).
    trading : int
        Sessions of a trading period, and between two formations (126: six months).
    top_n : int
        Pairs traded per sector and period, the closest first (GGR report the top 5 and top 20;
        the embedded sectors hold 1–6 symbols, so 5 — fixed in advance, not tuned).
    entry_sigma : float
        Open when the normalised prices diverge by this many formation σ.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    formation: int = Field(252, ge=20, description="Sessions of the formation window.")
    trading: int = Field(126, ge=2, description="Sessions of a trading period (a new formation every period).")
    top_n: int = Field(5, ge=1, description="Closest pairs traded per sector and period.")
    entry_sigma: float = Field(2.0, gt=0.0, lt=1e6, description="Entry distance in formation standard deviations.")

    # the formation calendar of the daily graph's stages (the stage factory and range runs read these):
    # a period's first trading session is a multiple of ``trading`` sessions from the epoch, its
    # formation session the session before — phase ``trading − 1`` of a ``trading``-session schedule
    @property
    def reselect_every(self) -> int:
        return self.trading

    @property
    def formation_phase(self) -> int:
        return self.trading - 1

    def reach(self, window: int) -> int:
        """Sessions back from an as-of session that a ``window`` ending at its formation session spans."""
        return window + self.trading - 1


def distance_pairs(closes_window: pd.DataFrame, params: DistanceParams) -> pd.DataFrame:
    """Stage: the selected pairs of one formation window.

    Parameters
    ----------
    closes_window : DataFrame
        The ``params.formation`` sessions before a trading period × the sector's symbols.
    params : DistanceParams

    Returns
    -------
    DataFrame
        :data:`pairs_assets.quant.distance.DISTANCE_COLUMNS` (pair_id, y, x, ssd, sigma, y0, x0,
        intercept, rank), the ``top_n`` smallest SSD.
    """
    return select_distance_pairs(closes_window, params.top_n)


def distance_config(
    pairs: pd.DataFrame,
    as_of,
    effective,
    sector: str,
    params: DistanceParams,
    *,
    formation_session=None,
    symbols=(),
    source: str = "",
    fingerprint: str = "distance",
) -> TradingConfig:
    """Stage: the trading config of ``pairs`` for as-of ``as_of`` (effective ``effective``).

    Pass no pairs (an empty frame) for the config effective on a trading period's last session:
    the rule then closes every open position at that close.
    """
    return distance_trading_config(
        pairs,
        as_of=_iso(as_of),
        effective_session=_iso(effective),
        sector=sector,
        top_n=params.top_n,
        entry_sigma=params.entry_sigma,
        formation=params.formation,
        formation_session=None if formation_session is None else _iso(formation_session),
        symbols=list(symbols),
        source=source,
        fingerprint=fingerprint,
    )


def _pipeline_config(
    pairs, *, as_of, effective, sector, params, formation_session, symbols, source, fingerprint, closing
):
    """:func:`distance_config` as the daily graph's trading_config stage calls it."""
    return distance_config(
        pairs.iloc[0:0] if closing else pairs,
        as_of,
        effective,
        sector,
        params,
        formation_session=formation_session,
        symbols=symbols,
        source=source,
        fingerprint=fingerprint,
    )


def _iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


class DistanceStrategy(StrategyPlugin):
    """GGR's distance method: the N closest normalised-price pairs, open at 2σ, close at the cross."""

    Params: ClassVar[type[BaseModel]] = DistanceParams
    summary: ClassVar[str] = (
        "Gatev-Goetzmann-Rouwenhorst distance method: the N smallest-SSD normalised-price pairs of a "
        "252-session formation, open at 2 sigma, close at the cross, 126-session periods"
    )
    combine_sectors: ClassVar[Literal["sum", "mean"]] = "mean"
    #: how the one rule must trade its configs (the walk-forward here, and the live signal job):
    #: a position whose pair leaves the config closes — the empty config on a period's last session
    #: is GGR's close at the period end — and no holding limit (the period bounds it)
    on_drop: ClassVar[str] = "exit"
    max_holding: ClassVar[int] = 0

    def pipeline(self):
        """The daily graph's two stages (:func:`pairs_assets.strategies.periodic.periodic_pipeline`):
        ``selected_pairs`` (:func:`distance_pairs` on the formation window ending the session before a
        period) and ``trading_config`` (:func:`distance_config`; the config of a period's last session
        lists no pair) — the configs :meth:`configs` builds for the walk-forward."""
        from pairs_assets.strategies.periodic import periodic_pipeline

        return periodic_pipeline(
            self.name,
            lambda window, params, where: distance_pairs(window, params),
            _pipeline_config,
            close_at_period_end=True,
            select_description="the N smallest-SSD normalised-price pairs",
        )

    def required_history(self, settings: WalkForwardSettings) -> int:
        """The formation window, plus up to ``trading − 1`` sessions of the period under way at the
        range start (anchored periods)."""
        return self.params.formation + self.params.trading - 1

    def configs(self, ctx: SectorContext) -> tuple[dict[pd.Timestamp, TradingConfig], pd.DatetimeIndex]:
        """Every session's config, from the first session of the period under way at the range start
        to the range end; and those sessions (the range with its lead).

        The config for as-of D is effective at D+1; on a period's last session it lists no pair.
        """
        p = self.params
        closes = ctx.panel.closes
        index = closes.index
        symbols = sorted(ctx.symbols)
        first, last = index.get_loc(ctx.sessions[0]), index.get_loc(ctx.sessions[-1])
        periods = distance_periods(
            index, first, last, p.formation, p.trading, ctx.anchor, strategy=self.name, sector=ctx.sector
        )
        lead = min(periods[0].trading_start, first)
        configs: dict[pd.Timestamp, TradingConfig] = {}
        empty = pd.DataFrame(columns=DISTANCE_COLUMNS)
        for period in periods:
            window = closes.iloc[period.formation_start : period.trading_start][symbols]
            pairs = distance_pairs(window, p)
            formation_session = index[period.trading_start - 1]
            fingerprint = (
                ctx.panel.fingerprint(symbols, period.trading_start - 1, p.formation)
                if ctx.panel.row_hashes is not None
                else fingerprint_of(self.name, ctx.sector, _iso(formation_session), p.model_dump())
            )
            common = dict(formation_session=formation_session, symbols=symbols, source=ctx.panel.source)
            open_config = distance_config(
                pairs, formation_session, index[period.trading_start], ctx.sector, p, fingerprint=fingerprint, **common
            )
            closing = distance_config(
                empty, formation_session, index[period.trading_start], ctx.sector, p, fingerprint=fingerprint, **common
            )
            for pos in range(max(period.trading_start, lead), min(period.trading_end, last + 1)):
                template = closing if pos == period.trading_end - 1 else open_config
                as_of = index[pos - 1]
                configs[as_of] = template.model_copy(
                    update={
                        "as_of_session": _iso(as_of),
                        "effective_session": _iso(index[pos]),
                        # recorded when earlier than the as-of session, as the daily graph's configs
                        "formation_session": None if as_of == formation_session else _iso(formation_session),
                    }
                )
        return configs, index[lead : last + 1]

    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        """The sector's configs traded by the one rule over the range (with the lead of the period
        under way), executed at every cost; only the range's sessions kept."""
        configs, traded = self.configs(ctx)
        trades = trade_configs(
            configs,
            ctx.panel.closes,
            traded,
            strategy_name=self.name,
            on_drop=self.on_drop,
            max_holding=self.max_holding,
        ).assign(sector=ctx.sector)
        executed = ctx.execute(trades, traded)
        if len(traded) > len(ctx.sessions):
            start = ctx.sessions[0]
            executed = {
                cost: (
                    daily.loc[start:],
                    done[done["entry_exec"] >= start].reset_index(drop=True),
                )
                for cost, (daily, done) in executed.items()
            }
        in_range = [c for c in configs.values() if pd.Timestamp(c.effective_session) >= ctx.sessions[0]]
        return SectorResult(
            executions={self.name: executed},
            configs=len(in_range),
            pair_days=sum(len(c.pairs) for c in in_range),
        )
