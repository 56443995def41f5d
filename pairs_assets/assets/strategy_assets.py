"""A strategy plugin's daily stages as assets, under its own asset key prefix.

:func:`plugin_assets` generates the assets of ``plugin.pipeline()``
(:func:`pairs_assets.assets.stage_factory.stage_assets`) with keys ``<name>/<stage>`` in the daily
group (so the ``daily_pairs`` job and the UI's backfills include them), reading their parameters
from the resource ``strategy__<name>`` that :func:`plugin_resources` gives: a
:class:`StrategyParamsResource` holding the strategy's name, its class and its params as JSON — the
launchpad shows (and a run may override) the params; the stages get them validated by the
strategy's own schema (:meth:`StrategyParamsResource.params`).
"""

from __future__ import annotations

import importlib
import json

import dagster as dg
from pydantic import BaseModel

from pairs_assets.assets.common import GROUP
from pairs_assets.assets.stage_factory import stage_assets
from pairs_assets.strategies.base import StrategyPlugin, StrategyPluginError

__all__ = ["StrategyParamsResource", "plugin_assets", "plugin_resource_key", "plugin_resources"]


def plugin_resource_key(name: str) -> str:
    """The resource a plugin's stages read their params from: ``strategy__<name>``."""
    return f"strategy__{name}"


class StrategyParamsResource(dg.ConfigurableResource):
    """A strategy plugin's parameters in the daily graph.

    ``strategy`` is its registered name, ``plugin`` its class (``module:Class``), ``params`` its
    parameters as a JSON object (the registered values; a run's launchpad may change them).
    :meth:`params` validates them by the strategy's schema (its ``Params``)."""

    strategy: str
    plugin: str
    params_json: str = "{}"

    def plugin_class(self) -> type[StrategyPlugin]:
        module, _, qualname = self.plugin.partition(":")
        try:
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise StrategyPluginError(
                f"strategy {self.strategy!r}: plugin class {self.plugin!r} cannot be loaded: {exc}"
            ) from None
        if not (isinstance(found, type) and issubclass(found, StrategyPlugin)):
            raise StrategyPluginError(f"strategy {self.strategy!r}: {self.plugin!r} is not a StrategyPlugin subclass")
        return found

    def params(self) -> BaseModel:
        """The params, validated by the strategy's schema (one error naming the strategy and field)."""
        try:
            values = json.loads(self.params_json)
        except json.JSONDecodeError as exc:
            raise StrategyPluginError(f"strategy {self.strategy!r}: params_json is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise StrategyPluginError(f"strategy {self.strategy!r}: params_json must be a JSON object")
        return self.plugin_class()(self.strategy, values).params


def _pipeline(plugin: StrategyPlugin):
    pipeline = plugin.pipeline()
    if pipeline is None:
        raise StrategyPluginError(
            f"strategy {plugin.name!r}: it has no pipeline (it only walks forward): no daily assets"
        )
    return pipeline


def plugin_assets(plugin: StrategyPlugin, daily: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The daily assets of ``plugin``'s pipeline: ``<name>/<stage>``, in the daily group, reading
    ``raw_bars`` and their params from the resource ``strategy__<name>`` (:func:`plugin_resources`)."""
    return stage_assets(
        _pipeline(plugin),
        daily,
        plugin.params,
        key_prefix=plugin.name,
        group_name=GROUP,
        strategy_key=plugin_resource_key(plugin.name),
    )


def plugin_resources(plugin: StrategyPlugin) -> dict[str, StrategyParamsResource]:
    """``{"strategy__<name>": StrategyParamsResource}`` for ``plugin``'s assets."""
    cls = type(plugin)
    return {
        plugin_resource_key(plugin.name): StrategyParamsResource(
            strategy=plugin.name,
            plugin=f"{cls.__module__}:{cls.__qualname__}",
            params_json=json.dumps(plugin.params.model_dump(mode="json"), sort_keys=True),
        )
    }
