"""The third-party plugin package (``pairs_example_strategy``, beside this file), installed for real."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pairs_assets_tests.assets.conftest import own_pairs_home  # noqa: F401  (a home of the test's own)

PACKAGE_DIR = Path(__file__).resolve().parent / "pairs_example_strategy"


@pytest.fixture(scope="session")
def example_plugin_installed(tmp_path_factory):
    """``pip install --no-deps --no-build-isolation`` of the example package into a folder of its own
    (offline: setuptools is the venv's), put on ``sys.path``; removed after the session. Yields the folder."""
    root = tmp_path_factory.mktemp("plugin")
    source, target = root / "src", root / "site"
    shutil.copytree(PACKAGE_DIR, source)  # the build writes beside the sources: not in the checkout
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("pairs_example_strategy", None)
        importlib.invalidate_caches()


@pytest.fixture(autouse=True)
def _live_instance_context():
    """Each test inside a live test instance: an earlier test's instance (gone) can stay Dagster's
    current definitions-state storage, and building a repository then resolves its dead weakref
    ("Attempted to resolve undefined DagsterInstance weakref"); a live instance's context replaces it."""
    with dg.instance_for_test():
        yield
