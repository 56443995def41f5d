"""The import contract (``[tool.importlinter]`` in pyproject.toml): it holds, it covers every module,
and it catches the violations it is there for (a resource reaching up into the Dagster layer, Dagster
in the numerics, a cycle between siblings). Also: no module imports another module's private name."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pairs_assets", "resources", "sensors")
#: Packages whose ``__init__`` only holds other layers' modules (they must import nothing themselves).
CONTAINERS = {"pairs_assets", "pairs_assets.live"}


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on ``tree`` (its pyproject.toml, its packages first on the path)."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def _modules(tree: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((tree / package).rglob("*.py")):
            parts = path.relative_to(tree).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken\.", result.stdout), result.stdout


def test_every_module_is_in_a_layer():
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    names = {name.strip(" ()") for layer in layers for name in re.split(r"[|:]", layer)}
    modules = _modules(ROOT)
    outside = [m for m in modules if m not in CONTAINERS and not any(m == n or m.startswith(n + ".") for n in names)]
    assert outside == [], f"add these modules to a layer in pyproject.toml [tool.importlinter]: {outside}"
    for container in CONTAINERS:
        tree = ast.parse(modules[container].read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)], container


def test_the_contract_catches_violations(tmp_path):
    """A copy of the tree with planted violations (of each of the three contracts): each is reported,
    the run fails."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.csv.gz"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    def plant(relative: str, code: str) -> None:
        with (tmp_path / relative).open("a") as handle:
            handle.write("\n\n" + code + "\n")

    plant(
        "resources/bars.py",
        "def _session_close(day):\n    from pairs_assets.partitions import session_close_utc\n\n    return session_close_utc(day)",
    )
    plant("pairs_assets/quant/sizing.py", "import dagster")
    plant("pairs_assets/quant/scoring.py", "from pairs_assets.quant import correlation")
    plant("pairs_assets/quant/correlation.py", "from pairs_assets.quant import scoring")
    # sub-packages of quant are covered too (the contract replaced quant/test_boundaries.py, which
    # scanned quant/*.py only and never saw quant/gru/ or quant/walkforward/)
    plant("pairs_assets/quant/gru/model.py", "def _registry():\n    import mlflow\n\n    return mlflow")
    plant(
        "pairs_assets/quant/walkforward/engine.py",
        "def _store():\n    from resources import market_data\n\n    return market_data",
    )
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "resources is not allowed to import pairs_assets.partitions" in result.stdout
    assert "resources.bars -> pairs_assets.partitions" in result.stdout
    assert "pairs_assets.quant.sizing -> dagster" in result.stdout
    assert "pairs_assets.quant.gru.model -> mlflow" in result.stdout
    assert "pairs_assets.quant.walkforward.engine -> resources.market_data" in result.stdout
    assert "No cycles are allowed in pairs_assets.quant" in result.stdout
    assert re.search(r"\.(scoring -> \.correlation|correlation -> \.scoring)", result.stdout)
    assert re.search(r"Contracts: 0 kept, 3 broken\.", result.stdout), result.stdout


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_private_name_of_another(package):
    """``from x import _name`` couples to what ``x`` may change freely (a private module of one's own
    package, ``from pairs_assets.quant import _garch_numba``, is allowed)."""
    offenders = []
    for module, path in _modules(ROOT).items():
        if not module.startswith(package):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    name = alias.name
                    private = name.startswith("_") and not name.startswith("__")
                    own_private_module = f"{node.module}.{name}" in _modules(ROOT)
                    if private and not own_private_module:
                        offenders.append(f"{module} (line {node.lineno}): from {node.module} import {name}")
    assert offenders == []
