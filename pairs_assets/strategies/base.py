"""The strategy plugin interface: what a strategy is, below Dagster.

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

The classes are defined in :mod:`pairs_assets.quant.walkforward.plugin`, beside the walk-forward
engine that runs them (the numerics import nothing above them); this is where plugins import them
from.
"""

from pairs_assets.quant.walkforward.plugin import (
    NAME_PATTERN,
    SectorContext,
    SectorResult,
    StrategyPlugin,
    StrategyPluginError,
)

__all__ = ["SectorContext", "SectorResult", "StrategyPlugin", "StrategyPluginError", "NAME_PATTERN"]
