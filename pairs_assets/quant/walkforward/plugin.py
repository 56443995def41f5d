"""The strategy plugin interface: what a strategy is, below Dagster (re-exported by
:mod:`pairs_assets.strategies.base`, where plugins import it from; it lives beside the walk-forward
engine, which runs plugins, so the numerics need nothing above them).

A strategy is

* a **config schema** — :attr:`StrategyPlugin.Params`, a pydantic model (``extra="forbid"``) whose
  defaults are the strategy's defaults; ``strategies.yaml`` and ``--set`` give values on top;
* a **pipeline** — :meth:`StrategyPlugin.pipeline`, the ordered stage specs
  (:mod:`pairs_assets.quant.pipeline`) that turn a sector's bars into the next session's
  :class:`~pairs_assets.quant.config_model.TradingConfig`; the daily graph generates its assets from
  it (under the strategy's asset key prefix) and the walk-forward iterates the same list. ``None``:
  a reference that only walks forward (the classical baseline);
* the **trading rule** — one rule for every strategy, :mod:`pairs_assets.quant.rule`, applied to
  the pipeline's configs by the walk-forward and by the live signal job alike (a strategy chooses
  its levels in its configs, never its own loop);
* :meth:`StrategyPlugin.walk_forward_sector` — one sector of a walk-forward: the trades the
  strategy makes over the range, executed by the shared execution model at every cost
  (:meth:`SectorContext.execute`).

Registration: a Python entry point in the group ``pairs_assets.strategies`` naming the class
(``name = "package.module:Class"``), and a ``strategies.yaml`` entry (name, class, parameters,
enabled) — see :mod:`pairs_assets.strategies.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
from pydantic import BaseModel, ValidationError

from pairs_assets.errors import PairsError

if TYPE_CHECKING:
    from pairs_assets.quant.walkforward.replay import SectorPanel

__all__ = [
    "NAME_PATTERN",
    "SectorContext",
    "SectorResult",
    "StrategyPlugin",
    "StrategyPluginError",
    "WalkForwardError",
]

#: :class:`~pairs_assets.quant.walkforward.engine.WalkForwardSettings` (not imported here: the
#: engine imports this module).
WalkForwardSettings = Any

#: A strategy name: an asset key prefix, a folder name, a CLI word.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class StrategyPluginError(PairsError, ValueError):
    """A strategy that cannot be registered or built; one line naming the strategy and the field."""


class WalkForwardError(PairsError, ValueError):
    """A walk-forward cannot run as asked; the message names the setting, sector, strategy or session."""


@dataclass(frozen=True)
class SectorContext:
    """What one sector of a walk-forward hands a strategy.

    ``sessions`` are the range's sessions (decision closes); the config of ``as_of[i]`` applies at
    ``effective[i]`` (the next session). ``anchor`` is the exchange-session number of
    ``panel.closes.index[0]`` counted from the formation epoch (None: periods start at the range).
    """

    panel: SectorPanel
    symbols: tuple[str, ...]
    sessions: pd.DatetimeIndex
    as_of: pd.DatetimeIndex
    effective: list[pd.Timestamp]
    settings: WalkForwardSettings
    next_session: Callable[[pd.Timestamp], pd.Timestamp]
    formation_of: Callable[[pd.Timestamp], pd.Timestamp] | None = None
    anchor: int | None = None
    #: The GRU stage and gate handed in by the caller (tests, paper replay); None: the strategy's own.
    models_for: Callable | None = None
    entry_gate: Callable | None = None
    #: ``progress(n)`` as as-of sessions are done (serial runs only; None in a worker process).
    progress: Callable[[int], None] | None = None

    @property
    def sector(self) -> str:
        return self.panel.sector

    def execute(
        self, trades: pd.DataFrame, sessions: pd.DatetimeIndex | None = None
    ) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
        """``trades`` (:data:`~pairs_assets.quant.walkforward.execution.TRADE_COLUMNS`) executed on
        the daily closes at every cost of the settings, with their lag: ``{cost: (daily, trades)}``."""
        from pairs_assets.quant.walkforward.execution import execute

        sessions = self.sessions if sessions is None else sessions
        out = {}
        for cost in self.settings.costs:
            result = execute(trades, self.panel.closes, sessions, lag=self.settings.lag, cost_bp=cost)
            out[cost] = (result.daily, result.trades)
        return out


@dataclass
class SectorResult:
    """One sector's walk-forward of one strategy: per label (a strategy may report variants side by
    side, e.g. with and without its GRU gate) and cost, the executed ``(daily, trades)``; and what
    the summary prints beside them."""

    executions: dict[str, dict[float, tuple[pd.DataFrame, pd.DataFrame]]]
    configs: int = 0
    pair_days: int = 0
    study: pd.DataFrame | None = None
    gru: dict = field(default_factory=dict)


class StrategyPlugin(ABC):
    """The base class of every strategy (built-in or third-party). Subclass, set :attr:`Params` and
    :attr:`summary`, implement :meth:`walk_forward_sector` (and :meth:`pipeline` to trade live)."""

    #: The config schema: a pydantic model; its defaults are the strategy's defaults.
    Params: ClassVar[type[BaseModel]]
    #: One line for ``pairs strategies list``.
    summary: ClassVar[str] = ""
    #: How the sectors' P&L adds up to the total: ``sum`` (each sector trades its own capital) or
    #: ``mean`` (one unit of capital split evenly across the sectors).
    combine_sectors: ClassVar[Literal["sum", "mean"]] = "sum"
    #: Whether its results are a trial of the selection (deflated Sharpe); False for a rule fixed in
    #: advance (the classical baseline).
    selected: ClassVar[bool] = True
    #: Whether it is the reference every other row is compared with (``vs_baseline``): the classical
    #: baseline. A walk-forward without one adds the baseline.
    reference: ClassVar[bool] = False

    def __init__(self, name: str, params: Mapping | BaseModel | None = None) -> None:
        self.name = name
        try:
            if isinstance(params, BaseModel):
                params = params.model_dump()
            self.params = self.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "parameters"
            raise StrategyPluginError(f"strategy {name!r}: parameter {where}: {first.get('msg')}") from None

    def labels(self, settings: WalkForwardSettings | None = None) -> Sequence[str]:
        """The names its rows carry in the walk-forward's tables under ``settings`` (default: its
        name; an override may take no ``settings``)."""
        return (self.name,)

    def pipeline(self):
        """The daily graph's stages (a :class:`pairs_assets.quant.pipeline.Pipeline`), or None for a
        strategy that only walks forward."""
        return None

    def required_history(self, settings: WalkForwardSettings) -> int:
        """Sessions of bars it reads before the range's first session (default: none)."""
        return 0

    def formation_calendar(self) -> tuple[int, int] | None:
        """``(every, phase)`` of the exchange formation calendar its configs are formed on (the
        caller builds :attr:`SectorContext.formation_of` from it), or None (none needed)."""
        return None

    def trial_params(self) -> dict:
        """Its parameters as the trials ledger keys a configuration (JSON values)."""
        return self.params.model_dump(mode="json")

    @abstractmethod
    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        """One sector over ``ctx.sessions``: decisions at closes up to each decision session only."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
