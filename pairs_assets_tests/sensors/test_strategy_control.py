"""Runtime control of the strategies (issue 19 item 6): the 6 AM schedule and the signal sensor read
the strategies file at every tick; disabling a strategy or changing its parameters takes effect at the
next tick of the same definitions (no code-server restart), and the runs record what the tick read."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from pairs_assets.definitions import build_definitions
from pairs_assets.settings import Paths
from pairs_assets.strategies.base import StrategyPluginError
from sensors.strategy_control import read_tick

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _live_instance_context():
    """Inside a live test instance: an earlier test's (gone) instance can stay Dagster's current
    definitions-state storage, and resolving a repository then hits its dead weakref."""
    with dg.instance_for_test():
        yield


def _write(path, entries):
    path.write_text(yaml.safe_dump(entries, sort_keys=False))


def _tick(definitions, day=dt.date(2022, 12, 13)):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(day.year, day.month, day.day, 6, 0, tzinfo=NY),
            repository_def=definitions.get_repository_def(),
        )
        return definitions.get_schedule_def("daily_pairs_schedule").evaluate_tick(context)


@pytest.fixture
def two_strategies(tmp_path):
    path = tmp_path / "strategies.yaml"
    _write(
        path,
        [
            {"name": "garch_gru", "class": "garch_gru", "enabled": True},
            {"name": "distance", "class": "distance", "params": {"top_n": 3}, "enabled": True},
            {"name": "baseline", "class": "baseline", "enabled": True},
        ],
    )
    definitions = build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path / "home")}), strategies_path=path)
    return path, definitions


def test_enabled_strategies_get_their_assets_and_each_tick_runs_them_with_the_files_parameters(two_strategies):
    path, definitions = two_strategies
    graph = definitions.resolve_asset_graph()
    assert dg.AssetKey(["distance", "trading_config"]) in graph.get_all_asset_keys()
    assert dg.AssetKey("trading_config") in graph.get_all_asset_keys()  # the primary: bare keys, unchanged
    first = _tick(definitions).run_requests
    assert len(first) == 6
    request = first[0]
    assert request.tags["pairs/strategies"] == "garch_gru,distance"  # the baseline walks forward only
    fingerprint = request.tags["pairs/strategies_fingerprint"]
    keys = set(request.asset_selection)
    assert {dg.AssetKey("raw_bars"), dg.AssetKey("trading_config"), dg.AssetKey(["distance", "trading_config"])} <= keys
    params = json.loads(request.run_config["resources"]["strategy__distance"]["config"]["params_json"])
    assert params["top_n"] == 3

    # the file changes: distance disabled, garch_gru re-tuned — the same definitions, the next tick
    _write(
        path,
        [
            {"name": "garch_gru", "class": "garch_gru", "params": {"correlation_min": 0.75}, "enabled": True},
            {"name": "distance", "class": "distance", "params": {"top_n": 3}, "enabled": False},
        ],
    )
    second = _tick(definitions).run_requests[0]
    assert second.tags["pairs/strategies"] == "garch_gru"
    assert second.tags["pairs/strategies_fingerprint"] != fingerprint
    assert dg.AssetKey(["distance", "trading_config"]) not in set(second.asset_selection)
    assert second.run_config["resources"]["strategy"]["config"]["correlation_min"] == 0.75
    assert "strategy__distance" not in second.run_config["resources"]


def test_the_signal_sensor_reads_the_file_at_each_tick(two_strategies):
    path, _definitions = two_strategies
    loaded = ("garch_gru", "distance")
    assert [name for name, _ in read_tick(path, loaded).run] == ["garch_gru", "distance"]
    _write(path, [{"name": "garch_gru", "class": "garch_gru", "enabled": False}])
    assert read_tick(path, loaded).run == []


def test_a_strategy_enabled_after_the_load_is_named_until_a_reload(two_strategies, tmp_path):
    path, definitions = two_strategies
    _write(
        path,
        [
            {"name": "garch_gru", "class": "garch_gru", "enabled": True},
            {"name": "distance_fast", "class": "distance", "params": {"trading": 63}, "enabled": True},
        ],
    )
    tick = read_tick(path, ("garch_gru", "distance"))
    assert tick.names == ["garch_gru"] and tick.not_loaded == ["distance_fast"]
    assert _tick(definitions).run_requests[0].tags["pairs/strategies"] == "garch_gru"


def test_a_broken_file_skips_the_tick_naming_it(two_strategies):
    path, definitions = two_strategies
    path.write_text("- name: garch_gru\n  class: no_such_class\n")
    result = _tick(definitions)
    assert not result.run_requests
    assert "strategies file" in result.skip_message and "no_such_class" in result.skip_message


def test_two_strategies_of_the_garch_gru_stages_cannot_both_be_enabled(tmp_path):
    path = tmp_path / "strategies.yaml"
    _write(
        path,
        [
            {"name": "garch_gru", "class": "garch_gru", "enabled": True},
            {"name": "seed", "class": "seed", "enabled": True},
        ],
    )
    with pytest.raises(StrategyPluginError, match="garch_gru, seed are all enabled"):
        build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path / "home")}), strategies_path=path)


def test_seed_enabled_in_place_of_garch_gru_is_the_primary(tmp_path):
    path = tmp_path / "strategies.yaml"
    _write(path, [{"name": "seed", "class": "seed", "enabled": True}])
    definitions = build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path / "home")}), strategies_path=path)
    request = _tick(definitions).run_requests[0]
    assert request.tags["pairs/strategies"] == "garch_gru"  # the bare-key graph's store name
    assert request.run_config["resources"]["strategy"]["config"]["formation_window"] == 60


def test_an_entry_point_that_fails_to_import_is_named_in_the_ui_while_the_others_load(tmp_path, monkeypatch):
    """A real broken entry point (a distribution on sys.path): the definitions still load with every
    other strategy, and the schedule's description — what the UI shows — names the failure."""
    from importlib import metadata

    from pairs_assets.strategies import registry as reg

    (tmp_path / "ui_broken_module.py").write_text("raise ImportError('no module named torchvision')\n")
    info = tmp_path / "pairs_assets_ui_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pairs-assets-ui-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pairs_assets.strategies]\nbroken_ui = ui_broken_module:Strategy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "broken_ui" in {ep.name for ep in metadata.entry_points(group=reg.ENTRY_POINT_GROUP)}
    monkeypatch.setattr(reg, "_CLASSES", [])  # discover the installed entry points again
    path = tmp_path / "strategies.yaml"
    _write(
        path,
        [
            {"name": "garch_gru", "class": "garch_gru", "enabled": True},
            {"name": "distance", "class": "distance", "enabled": True},
        ],
    )
    definitions = build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path / "home")}), strategies_path=path)
    description = definitions.get_schedule_def("daily_pairs_schedule").description
    assert "broken_ui" in description and "no module named torchvision" in description
    assert dg.AssetKey(["distance", "trading_config"]) in definitions.resolve_asset_graph().get_all_asset_keys()
