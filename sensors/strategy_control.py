"""The strategies file, read at every tick: which strategies the daily graph and the live path run.

The definitions are built from the strategies file once (each enabled strategy's assets: the
primary — ``garch_gru``, or ``seed`` enabled in its place — under the bare keys, every other one with
a pipeline under ``<name>/…``). The 6 AM schedule and the signal sensor then re-read the file at
every tick (:func:`pairs_assets.strategies.registry.load_registry`, cheap unless it changed), so
**disabling** a strategy and changing its **parameters** take effect at the next tick without
restarting the code server; a strategy enabled after the definitions loaded needs a reload (its
assets do not exist yet: the tick names it). The runs record what the tick read: tags
``pairs/strategies`` (the strategies run) and ``pairs/strategies_fingerprint`` (the file's hash),
and the run config carries each strategy's parameters (so the launchpad and MLflow show them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from pairs_assets.errors import PairsError
from pairs_assets.quant.walkforward.builtin_strategies import GarchGruStrategy
from pairs_assets.strategies.base import StrategyPlugin, StrategyPluginError
from pairs_assets.strategies.registry import Registry, load_registry
from resources.market_data import PRIMARY_STRATEGY

__all__ = ["DailyStrategies", "TickStrategies", "daily_strategies", "is_primary", "read_tick", "rule_settings_of"]

#: The resource of a plugin's parameters (pairs_assets.assets.strategy_assets.plugin_resource_key).
PLUGIN_RESOURCE = "strategy__{}"


def is_primary(plugin: StrategyPlugin) -> bool:
    """A strategy of the garch_gru stages (garch_gru, seed): the bare-key graph and ``strategy`` resource."""
    return isinstance(plugin, GarchGruStrategy)


def rule_settings_of(plugin: StrategyPlugin) -> dict:
    """How the one rule trades the strategy's configs live (its ``on_drop`` / ``max_holding``)."""
    out = {}
    for name in ("on_drop", "max_holding"):
        value = getattr(type(plugin), name, None)
        if value is not None:
            out[name] = value
    return out


@dataclass(frozen=True)
class DailyStrategies:
    """What the definitions build from one read of the strategies file."""

    registry: Registry
    primary: StrategyPlugin | None  # the bare-key graph's strategy (None: the file enables none)
    plugins: tuple[StrategyPlugin, ...] = ()  # the other enabled strategies with a pipeline

    @property
    def loaded(self) -> tuple[str, ...]:
        """The strategy names that have daily assets in these definitions (the primary as ``garch_gru``)."""
        return (PRIMARY_STRATEGY,) * (self.primary is not None) + tuple(p.name for p in self.plugins)


def daily_strategies(path: Path | str | None = None) -> DailyStrategies:
    """The strategies the definitions build assets for (see the module docstring).

    Raises
    ------
    StrategyPluginError
        The file fails (one line naming it), or it enables two strategies of the garch_gru stages
        (they would write the same bare-key assets, trading configs and MLflow models).
    """
    registry = load_registry(path)
    primaries = [e.plugin for e in registry.enabled if is_primary(e.plugin)]
    if len(primaries) > 1:
        names = ", ".join(p.name for p in primaries)
        raise StrategyPluginError(
            f"{registry.path}: strategies {names} are all enabled and all run the garch_gru stages under the bare "
            f"asset keys: enable one of them"
        )
    plugins = tuple(e.plugin for e in registry.enabled if not is_primary(e.plugin) and e.plugin.pipeline() is not None)
    return DailyStrategies(registry, primaries[0] if primaries else None, plugins)


@dataclass
class TickStrategies:
    """One tick's read of the strategies file, restricted to the strategies these definitions load."""

    fingerprint: str
    run: list[tuple[str, StrategyPlugin]]  # (store name: garch_gru for the primary, plugin)
    not_loaded: list[str] = field(default_factory=list)  # enabled in the file, no assets until a reload

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.run]

    def tags(self) -> dict[str, str]:
        return {"pairs/strategies": ",".join(self.names), "pairs/strategies_fingerprint": self.fingerprint}

    def resources_config(self) -> dict:
        """The run config's resources: each strategy's parameters as the file gives them now."""
        out = {}
        for name, plugin in self.run:
            params = plugin.params.model_dump(mode="json")
            if name == PRIMARY_STRATEGY:
                out["strategy"] = {"config": params}
            else:
                cls = type(plugin)
                out[PLUGIN_RESOURCE.format(name)] = {
                    "config": {
                        "strategy": name,
                        "plugin": f"{cls.__module__}:{cls.__qualname__}",
                        "params_json": json.dumps(params, sort_keys=True),
                    }
                }
        return out

    def asset_keys(self, stages: Mapping[str, Sequence[dg.AssetKey]]) -> list[dg.AssetKey]:
        """``raw_bars`` and the stages of the strategies this tick runs."""
        keys = [dg.AssetKey("raw_bars")]
        for name in self.names:
            keys.extend(stages.get(name, ()))
        return keys


def read_tick(path: Path | str | None, loaded: Sequence[str]) -> TickStrategies:
    """The strategies file now: the enabled strategies among ``loaded`` (a PairsError propagates)."""
    registry = load_registry(path)
    tick = TickStrategies(registry.fingerprint, [])
    for entry in registry.enabled:
        name = PRIMARY_STRATEGY if is_primary(entry.plugin) else entry.name
        if entry.plugin.pipeline() is None:
            continue  # walks forward only (the classical baseline)
        if name in loaded:
            tick.run.append((name, entry.plugin))
        else:
            tick.not_loaded.append(entry.name)
    return tick


def signal_enabled(path: Path | str | None, loaded: Sequence[str]) -> Callable[[], list[tuple[str, dict]]]:
    """The signal sensor's ``enabled``: (store name, live rule settings) of each enabled, loaded strategy."""

    def enabled() -> list[tuple[str, dict]]:
        tick = read_tick(path, loaded)
        return [(name, rule_settings_of(plugin)) for name, plugin in tick.run]

    return enabled


def signal_fingerprint(path: Path | str | None) -> Callable[[], str | None]:
    def fingerprint() -> str | None:
        try:
            return load_registry(path).fingerprint
        except PairsError:
            return None

    return fingerprint
