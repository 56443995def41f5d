"""quant/ is pure numerics: it never imports dagster or the resources package."""

import ast
from pathlib import Path

QUANT = Path(__file__).resolve().parents[2] / "pairs_assets" / "quant"
FORBIDDEN = ("dagster", "resources", "pairs_assets.resources")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_quant_never_imports_dagster_or_resources():
    modules = sorted(QUANT.glob("*.py"))
    assert modules, "quant package not found"
    for path in modules:
        for name in imported_modules(path):
            assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN), f"{path.name} imports {name}"
