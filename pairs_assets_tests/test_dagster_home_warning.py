"""Without DAGSTER_HOME a `dagster` command runs on a throwaway instance: the definitions warn, once."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pairs_assets import definitions
from pairs_assets.settings import Paths

ROOT = Path(__file__).resolve().parents[1]


def test_warns_once_when_dagster_home_is_unset(monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setattr(definitions, "_warned_dagster_home", False)
    p = Paths.from_env({"PAIRS_HOME": str(tmp_path)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert definitions.warn_without_dagster_home(p) is True
        assert definitions.warn_without_dagster_home(p) is False  # once per process
    assert [w.category for w in caught] == [definitions.DagsterHomeWarning]
    message = str(caught[0].message)
    assert "DAGSTER_HOME is not set" in message and "throwaway instance" in message
    assert f"export DAGSTER_HOME={tmp_path / 'dagster'}" in message


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_no_warning_with_dagster_home_and_the_projects_instance_settings(monkeypatch, tmp_path, config):
    (tmp_path / "dagster.yaml").write_text((ROOT / config).read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setattr(definitions, "_warned_dagster_home", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert definitions.warn_without_dagster_home() is False
    assert not [w for w in caught if w.category is definitions.DagsterHomeWarning]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no dagster.yaml"),
        ("telemetry:\n  enabled: false\n", "names none of the project's instance settings"),
        ("storage: [unclosed\n", "its dagster.yaml cannot be read (ParserError)"),
    ],
    ids=["none", "stock", "unreadable"],
)
def test_a_dagster_home_without_the_projects_instance_settings_warns_of_the_stock_storage(
    monkeypatch, tmp_path, content, reason
):
    """Issue 21 item 12: a fresh DAGSTER_HOME silently got Dagster's stock (slow) storage."""
    if content is not None:
        (tmp_path / "dagster.yaml").write_text(content)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setattr(definitions, "_warned_dagster_home", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert definitions.warn_without_dagster_home() is True
        assert definitions.warn_without_dagster_home() is False  # once per process
    (warning,) = [w for w in caught if w.category is definitions.DagsterHomeWarning]
    message = str(warning.message)
    assert message.startswith(f"DAGSTER_HOME={tmp_path}: ") and reason in message
    assert "stock storage" in message and "pairs init" in message and str(ROOT / "deploy" / "dagster.yaml") in message


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(PAIRS_HOME=str(tmp_path / "home"), PYTHONWARNINGS="default", **extra)
    return env


@pytest.mark.slow
def test_importing_the_definitions_warns_once_and_pairs_commands_do_not(tmp_path):
    """What `dagster job execute -m pairs_assets.definitions` does first: import the module."""
    imported = subprocess.run(
        [sys.executable, "-c", "import pairs_assets.definitions as d; assert d.warn_without_dagster_home() is False"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stderr.count("DagsterHomeWarning: DAGSTER_HOME is not set") == 1, imported.stderr[-3000:]
    assert f"export DAGSTER_HOME={tmp_path / 'home' / 'dagster'}" in imported.stderr

    # `pairs` exports the local instance before it imports the definitions
    command = subprocess.run(
        [sys.executable, "-m", "pairs_assets.cli", "load-bars", "--start", "2022-12-24", "--end", "2022-12-26"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert command.returncode == 2, command.stderr[-3000:]
    assert "DagsterHomeWarning" not in command.stderr, command.stderr[-3000:]
    assert command.stderr.strip().startswith("Error: ") and len(command.stderr.strip().splitlines()) == 1
