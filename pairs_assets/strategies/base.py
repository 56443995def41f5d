"""The strategy plugin interface, where plugins import it from.

A strategy is a parameter schema (``Params``), a pipeline (``pipeline()``: the stages the daily
graph generates its assets from and the walk-forward iterates) and one sector's walk-forward
(``walk_forward_sector``); its configs are traded by the one rule (:mod:`pairs_assets.quant.rule`).
The classes are defined — and described in full — in :mod:`pairs_assets.quant.walkforward.plugin`,
beside the walk-forward engine that runs them (the numerics import nothing above them).
Registration: :mod:`pairs_assets.strategies.registry`.
"""

from pairs_assets.quant.walkforward.plugin import (
    NAME_PATTERN,
    SectorContext,
    SectorResult,
    StrategyPlugin,
    StrategyPluginError,
)

__all__ = ["SectorContext", "SectorResult", "StrategyPlugin", "StrategyPluginError", "NAME_PATTERN"]
