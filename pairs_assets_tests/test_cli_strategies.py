"""`pairs strategies list|show` and `pairs walk-forward --strategy` (issue 19): the strategies file's
entries and the entry points that failed, named in the CLI; an unknown strategy or a bad parameter
refused in one line before any run is created."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from pairs_assets.cli import main
from pairs_assets.settings import paths
from pairs_assets.strategies import registry as reg


@pytest.fixture()
def strategies(tmp_path, monkeypatch):
    """A strategies file of fixture and built-in classes (named by module:Class, so the test needs no
    installed entry point), plus a distribution on sys.path whose entry point fails to import."""
    (tmp_path / "reg_cli_broken.py").write_text("import no_such_dependency_xyz\n")
    info = tmp_path / "pairs_assets_cli_fixture-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pairs-assets-cli-fixture\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pairs_assets.strategies]\nflat = pairs_assets_tests.strategy_fixtures:FlatStrategy\n"
        "cli_broken = reg_cli_broken:Strategy\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(reg, "_CLASSES", [])  # discover again, with the fixture distribution
    path = tmp_path / "strategies.yaml"
    path.write_text(
        "- name: flat\n  class: flat\n  params: {window: 3}\n"
        "- name: seed_wide\n  class: pairs_assets.strategies.builtins:SeedStrategy\n  params: {entry_z: 2.5}\n"
        "  enabled: false\n"
    )
    monkeypatch.setenv("PAIRS_STRATEGIES_FILE", str(path))
    monkeypatch.setenv("PAIRS_HOME", str(tmp_path / "home"))
    paths.cache_clear()
    yield path
    paths.cache_clear()


def test_list_names_every_strategy_and_the_failed_entry_point(strategies):
    result = CliRunner().invoke(main, ["strategies", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"strategies file {strategies} (fingerprint ")
    flat = next(line for line in lines if line.startswith("flat "))
    assert "yes" in flat and "never trades (a test fixture)" in flat
    wide = next(line for line in lines if line.startswith("seed_wide "))
    assert "pairs_assets.strategies.builtins:SeedStrategy" in wide and " no " in wide
    assert any(
        line.strip().startswith("cli_broken: reg_cli_broken:Strategy failed to import: ModuleNotFoundError")
        for line in lines
    ), result.output


def test_show_prints_parameters_with_defaults_and_descriptions(strategies):
    result = CliRunner().invoke(main, ["strategies", "show", "seed_wide"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "class           pairs_assets.strategies.builtins:SeedStrategy" in out
    assert "enabled         no" in out and f"source file     {strategies}" in out
    assert "  entry_z = 2.5 (default 2.0)" in out
    assert "  formation_window = 60\n      Sessions of closes for correlation and Engle-Granger." in out


def _one_line_error(result, *expected):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def _runs() -> int:
    from pairs_assets.cli import init_home

    init_home()
    with dg.DagsterInstance.get() as instance:
        return instance.get_runs_count()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["strategies", "show", "nope"], ["unknown strategy 'nope'", "(known: flat, seed_wide)"]),
        (
            ["walk-forward", "--skip-load", "--strategy", "nope"],
            ["--strategy", "unknown strategy 'nope'", "known: flat"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--set", "flat.window=0"],
            ["strategy 'flat': parameter window: Input should be greater than or equal to 1"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--set", "window=3"],
            ["strategy parameter 'window=3': expected NAME.KEY=VALUE"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--set", "seed_wide.entry_z=3"],
            ["'seed_wide' is not one of the strategies walked forward (flat)"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--strategy", "flat"],
            ["strategy 'flat' is named twice"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--preset", "seed"],
            ["--preset", "with --strategy set parameters as --set NAME.KEY=VALUE"],
        ),
        (
            ["walk-forward", "--skip-load", "--strategy", "flat", "--set", "flat.window=100000"],
            ["strategy 'flat': its longest window needs 100001 sessions", "lower its windows"],
        ),
    ],
)
def test_bad_strategy_input_is_one_line_before_any_run(strategies, args, expected):
    runs = _runs()
    _one_line_error(CliRunner().invoke(main, args), *expected)
    assert _runs() == runs


def test_a_bad_strategies_file_is_one_line(strategies):
    strategies.write_text("- {name: flat, class: flat}\n- {name: flat, class: flat}\n")
    _one_line_error(
        CliRunner().invoke(main, ["strategies", "list"]),
        f"{strategies}: entry 2 ('flat'): name 'flat' is given twice",
    )
