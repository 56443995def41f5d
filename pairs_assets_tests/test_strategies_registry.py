"""The strategy registry (issue 19): entry points of group ``pairs_assets.strategies`` found through a
real distribution on sys.path, the strategies file read and validated as a whole, re-read when it
changes; each bad input one line naming the file, the entry and the field, nothing registered half-way."""

from __future__ import annotations

import os
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from pairs_assets.strategies import registry as reg
from pairs_assets.strategies.base import StrategyPluginError
from pairs_assets.strategies.builtins import BaselineStrategy, GarchGruStrategy, SeedStrategy
from pairs_assets_tests.strategy_fixtures import FlatStrategy

ROOT = Path(__file__).resolve().parents[1]
DIST = "pairs-assets-test-strategies"


@pytest.fixture()
def fixture_dist(tmp_path, monkeypatch):
    """A distribution on sys.path whose entry points (group pairs_assets.strategies) name a good
    class, a module that fails to import, and a class that is no plugin; returns its entry points."""
    (tmp_path / "reg_broken_module.py").write_text("raise RuntimeError('boom at import\\nsecond line')\n")
    info = tmp_path / "pairs_assets_test_strategies-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pairs_assets.strategies]\n"
        "flat = pairs_assets_tests.strategy_fixtures:FlatStrategy\n"
        "broken = reg_broken_module:Anything\n"
        "notplugin = pairs_assets_tests.strategy_fixtures:NotAPlugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return [ep for ep in metadata.entry_points(group=reg.ENTRY_POINT_GROUP) if ep.dist.name == DIST]


def _write(tmp_path: Path, text: str, name: str = "strategies.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_entry_points_load_and_a_failing_one_is_listed_while_the_others_load(fixture_dist):
    assert sorted(ep.name for ep in fixture_dist) == ["broken", "flat", "notplugin"]
    classes, failures = reg.discover(fixture_dist)
    assert classes == {"flat": FlatStrategy}
    reasons = {f.name: f.reason for f in failures}
    assert set(reasons) == {"broken", "notplugin"}
    assert reasons["broken"] == (
        "reg_broken_module:Anything failed to import: RuntimeError: boom at import second line"
    )
    assert "\n" not in reasons["broken"]
    assert reasons["notplugin"] == "pairs_assets_tests.strategy_fixtures:NotAPlugin is not a StrategyPlugin subclass"


def test_the_file_names_entry_points_and_paths_with_params_on_the_defaults(fixture_dist, tmp_path):
    path = _write(
        tmp_path,
        "- name: flat_a\n  class: flat\n  params: {window: 3}\n"
        "- name: flat_b\n  class: pairs_assets_tests.strategy_fixtures:FlatStrategy\n  enabled: false\n"
        "- name: gone\n  class: broken\n",
    )
    registry = reg.read_registry(path, entry_points=fixture_dist)
    assert list(registry.entries) == ["flat_a", "flat_b"]
    a, b = registry.entries["flat_a"], registry.entries["flat_b"]
    assert (a.enabled, a.plugin.params.window, a.plugin.params.entry_z) == (True, 3, 2.0)
    assert (b.enabled, b.cls, b.plugin.params.window) == (False, FlatStrategy, 10)
    assert [e.name for e in registry.enabled] == ["flat_a"]
    # the entry whose entry point failed is not registered, the failure named; the others load
    assert registry.unavailable == {
        "gone": "entry point 'broken': reg_broken_module:Anything failed to import: RuntimeError: boom at import "
        "second line"
    }
    with pytest.raises(StrategyPluginError, match="strategy 'gone' is unavailable: entry point 'broken'"):
        registry.get("gone")
    with pytest.raises(StrategyPluginError, match=r"unknown strategy 'nope' in .*\(known: flat_a, flat_b\)"):
        registry.get("nope")
    # overrides on the file's params, validated
    assert registry.build("flat_a", {"entry_z": 1.5}).params.model_dump() == {"window": 3, "entry_z": 1.5}
    with pytest.raises(StrategyPluginError, match="strategy 'flat_a': parameter entry_z: Input should be greater"):
        registry.build("flat_a", {"entry_z": -1})
    assert len(registry.fingerprint) == 16


def test_a_mapping_file_keys_the_names(tmp_path):
    path = _write(tmp_path, "strategies:\n  mine:\n    class: garch_gru\n    params: {formation_window: 126}\n")
    registry = reg.read_registry(path, classes=({"garch_gru": GarchGruStrategy}, ()))
    entry = registry.get("mine")
    assert isinstance(entry.plugin, GarchGruStrategy) and entry.plugin.strategy.formation_window == 126


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- {name: twin, class: flat}\n- {name: twin, class: flat, params: {window: 2}}\n",
            "{path}: entry 2 ('twin'): name 'twin' is given twice; strategy names must be unique",
        ),
        (
            "- {name: good, class: flat}\n- {name: other, class: martian}\n",
            "{path}: entry 2 ('other'): class 'martian' is neither a registered strategy (known: flat) "
            "nor a module:Class path",
        ),
        (
            "- {name: other, class: 'pairs_assets_tests.strategy_fixtures:Martian'}\n",
            "{path}: entry 1 ('other'): class 'pairs_assets_tests.strategy_fixtures:Martian': "
            "pairs_assets_tests.strategy_fixtures has no 'Martian'",
        ),
        (
            "- {name: other, class: 'no_such_module_xyz:Thing'}\n",
            "{path}: entry 1 ('other'): class 'no_such_module_xyz:Thing': module 'no_such_module_xyz' failed to "
            "import: ModuleNotFoundError: No module named 'no_such_module_xyz'",
        ),
        (
            "- {name: other, class: 'pairs_assets_tests.strategy_fixtures:NotAPlugin'}\n",
            "{path}: entry 1 ('other'): class 'pairs_assets_tests.strategy_fixtures:NotAPlugin' is not a "
            "StrategyPlugin subclass",
        ),
        (
            "- {name: good, class: flat}\n- {name: bad, class: flat, params: {window: 0}}\n",
            "{path}: strategy 'bad': parameter window: Input should be greater than or equal to 1",
        ),
        (
            "- {name: bad, class: flat, params: {windw: 3}}\n",
            "{path}: strategy 'bad': parameter windw: Extra inputs are not permitted",
        ),
        (
            "- {name: Bad-Name, class: flat}\n",
            "{path}: entry 1 ('Bad-Name'): name 'Bad-Name' must be lower-case letters, digits and _, starting "
            "with a letter, at most 40 characters",
        ),
        ("- {name: x, class: flat, enabled: maybe}\n", "{path}: entry 1 ('x'): enabled 'maybe' must be true or false"),
        (
            "- {name: x, class: flat, colour: red}\n",
            "{path}: entry 1 ('x'): unknown field 'colour' (fields: class, enabled, name, params)",
        ),
        ("- {name: x}\n", "{path}: entry 1 ('x'): class is missing (an entry-point name or module:Class)"),
        ("- [a, b\n", "strategies file {path}: not valid YAML at line 2"),
        ("just text\n", "{path}: expected a list of strategies or a mapping of name to strategy"),
    ],
)
def test_a_bad_file_fails_as_a_whole_in_one_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(StrategyPluginError) as raised:
        reg.read_registry(path, classes=({"flat": FlatStrategy}, ()))
    assert str(raised.value) == message.format(path=path)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(StrategyPluginError, match=r"strategies file .*none\.yaml: cannot be read"):
        reg.read_registry(tmp_path / "none.yaml", classes=({}, ()))


def test_where_the_file_comes_from(tmp_path):
    named = _write(tmp_path, "[]\n", "named.yaml")
    home = tmp_path / "home"
    home.mkdir()
    assert reg.strategies_file({"PAIRS_STRATEGIES_FILE": str(named), "PAIRS_HOME": str(home)}) == named
    assert reg.strategies_file({"PAIRS_HOME": str(home)}) == reg.default_strategies_file()  # none in the home
    (home / "strategies.yaml").write_text("[]\n")
    assert reg.strategies_file({"PAIRS_HOME": str(home)}) == home / "strategies.yaml"
    assert reg.strategies_file({}) == reg.default_strategies_file()


def test_the_shipped_file_with_the_projects_own_entry_points_enables_garch_gru_only():
    """The built-ins as pyproject.toml registers them (the same entry-point mechanism as a third
    party's): garch_gru on; seed and baseline listed, off; distance off (or unavailable where its
    module is not there)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][reg.ENTRY_POINT_GROUP]
    eps = [metadata.EntryPoint(name, value, reg.ENTRY_POINT_GROUP) for name, value in declared.items()]
    registry = reg.read_registry(reg.default_strategies_file(), entry_points=eps)
    assert registry.classes["garch_gru"] is GarchGruStrategy
    assert registry.classes["seed"] is SeedStrategy and registry.classes["baseline"] is BaselineStrategy
    assert [e.name for e in registry.enabled] == ["garch_gru"]
    listed = [*registry.entries, *registry.unavailable]
    assert sorted(listed) == ["baseline", "distance", "garch_gru", "seed"]
    assert not registry.entries["seed"].enabled and not registry.entries["baseline"].enabled
    # today's defaults: garch_gru's are the Strategy defaults, seed's the seed preset
    from pairs_assets.quant.strategy import PRESETS, Strategy

    assert registry.entries["garch_gru"].plugin.strategy == Strategy()
    assert registry.entries["seed"].plugin.strategy == Strategy(**PRESETS["seed"])


def test_load_registry_rereads_the_file_when_it_changes(fixture_dist, tmp_path, monkeypatch):
    monkeypatch.setattr(reg, "_CLASSES", [reg.discover(fixture_dist)])
    path = _write(tmp_path, "- {name: flat_a, class: flat, params: {entry_z: 2.0}}\n")
    first = reg.load_registry(path)
    assert reg.load_registry(path) is first  # unchanged: not re-read
    path.write_text("- {name: flat_a, class: flat, params: {entry_z: 2.5}, enabled: false}\n")
    stamp = time.time() + 5
    os.utime(path, (stamp, stamp))
    second = reg.load_registry(path)
    assert second is not first and second.fingerprint != first.fingerprint
    assert (second.get("flat_a").plugin.params.entry_z, second.get("flat_a").enabled) == (2.5, False)
    # a broken edit fails (one line) and keeps failing until fixed; the fixed file loads again
    path.write_text("- {name: flat_a, class: flat, params: {entry_z: -1}}\n")
    os.utime(path, (stamp + 5, stamp + 5))
    with pytest.raises(StrategyPluginError, match="parameter entry_z"):
        reg.load_registry(path)
    with pytest.raises(StrategyPluginError, match="parameter entry_z"):
        reg.load_registry(path)
    path.write_text("- {name: flat_a, class: flat, params: {entry_z: 3.0}}\n")
    os.utime(path, (stamp + 10, stamp + 10))
    assert reg.load_registry(path).get("flat_a").plugin.params.entry_z == 3.0


def test_load_registry_discovers_the_installed_entry_points(fixture_dist, tmp_path, monkeypatch):
    """Without injected entry points: importlib.metadata's, the fixture distribution's among them."""
    monkeypatch.setattr(reg, "_CLASSES", [])
    path = _write(tmp_path, "- {name: mine, class: flat}\n")
    registry = reg.load_registry(path)
    assert registry.get("mine").cls is FlatStrategy
    assert {"broken", "notplugin"} <= {f.name for f in registry.failures}
