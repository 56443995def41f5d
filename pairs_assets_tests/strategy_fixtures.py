"""Strategy plugins for the registry and multi-strategy walk-forward tests (named by entry points
and strategies files written by the tests)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pairs_assets.quant.walkforward.execution import empty_trades
from pairs_assets.strategies.base import SectorContext, SectorResult, StrategyPlugin


class FlatParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(10, ge=1, description="Sessions of bars it claims to read before the range.")
    entry_z: float = Field(2.0, gt=0.0, description="An entry threshold (unused: it never trades).")


class FlatStrategy(StrategyPlugin):
    """Never trades; reads ``window`` sessions before the range (a fixture)."""

    Params = FlatParams
    summary = "never trades (a test fixture)"

    def required_history(self, settings) -> int:
        return self.params.window

    def walk_forward_sector(self, ctx: SectorContext) -> SectorResult:
        return SectorResult(executions={self.name: ctx.execute(empty_trades().assign(sector=ctx.sector))})


class NotAPlugin:
    """A class that is no StrategyPlugin."""
