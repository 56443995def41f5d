"""Private Dagster names stay fenced: listed in pairs_assets/instance/PRIVATE_API.md, used only there.

Scanned (``pairs_assets``, ``resources``, ``sensors``):

* imports from a private Dagster module — ``dagster._…`` (any ``_`` component), ``dagster_shared…`` —
  by their full dotted name (``dagster._core.events.ASSET_EVENTS``);
* ``obj._name`` attribute accesses, in files that import Dagster, of names the product defines
  nowhere itself (so they belong to a Dagster object);
* private methods of a Dagster base class that a product class (or its mixins) overrides, found by
  importing the instance package and walking each class's MRO.

A name found and not listed fails (add it to the note with why, or use a public name); a listed
name no longer found fails (remove it); a name found outside ``pairs_assets/instance/`` fails.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pairs_assets", "resources", "sensors")
NOTE = ROOT / "pairs_assets" / "instance" / "PRIVATE_API.md"
FENCE = "pairs_assets/instance/"
#: ``_``-names that are public API of Python itself (namedtuple methods, ABC and typing machinery)
PYTHON_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_abc_impl", "_is_protocol"}


def _is_private_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "dagster_shared" or (
        parts[0].startswith("dagster") and any(p.startswith("_") and not p.startswith("__") for p in parts)
    )


def product_files() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text())
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _defined_names(trees) -> set[str]:
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def private_imports(files: dict[str, ast.Module]) -> dict[str, set[str]]:
    """{dotted name: files importing it}"""
    found: dict[str, set[str]] = {}
    for rel, tree in files.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and _is_private_module(node.module):
                for alias in node.names:
                    found.setdefault(f"{node.module}.{alias.name}", set()).add(rel)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _is_private_module(alias.name):
                        found.setdefault(alias.name, set()).add(rel)
    return found


def private_attributes(files: dict[str, ast.Module]) -> dict[str, set[str]]:
    """{_name: files} — private attributes of objects the product does not define."""
    own = _defined_names(files.values())
    found: dict[str, set[str]] = {}
    for rel, tree in files.items():
        imports_dagster = any(
            isinstance(n, ast.Import | ast.ImportFrom)
            and any(
                (m or "").split(".")[0].startswith("dagster")
                for m in ([n.module] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names])
            )
            for n in ast.walk(tree)
        )
        if not imports_dagster:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in own
                and node.attr not in PYTHON_API
            ):
                found.setdefault(node.attr, set()).add(rel)
    return found


def _subclasses_dagster(tree: ast.Module) -> bool:
    """Whether a class of the module names a base imported from Dagster (``Base`` or ``dg.Base``)."""
    aliases, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name.split(".")[0].startswith("dagster"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0].startswith("dagster"):
            names.update(a.asname or a.name for a in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Name) and base.id in names:
                    return True
                if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id in aliases:
                    return True
    return False


def private_overrides(files: dict[str, ast.Module]) -> dict[str, set[str]]:
    """{_name: files} — private methods of a Dagster base class that a product class overrides."""
    found: dict[str, set[str]] = {}
    for rel, tree in files.items():
        if not _subclasses_dagster(tree):
            continue
        module_name = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        module = importlib.import_module(module_name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module_name:
                continue
            dagster_bases = [b for b in cls.__mro__ if b.__module__.split(".")[0].startswith("dagster")]
            if not dagster_bases:
                continue
            ours = [c for c in cls.__mro__ if c.__module__.split(".")[0] in PACKAGES]
            for klass in ours:
                for name in vars(klass):
                    private = name.startswith("_") and not name.startswith("__") and name not in PYTHON_API
                    if private and any(hasattr(base, name) for base in dagster_bases):
                        found.setdefault(name, set()).add(str(Path(inspect.getfile(klass)).relative_to(ROOT)))
    return found


def documented() -> set[str]:
    """The names in the first column of the note's tables."""
    names = set()
    for line in NOTE.read_text().splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(re.findall(r"`([^`\s]+)`", cells[1]))
    return names - {"name"}


@functools.lru_cache(maxsize=1)
def in_use() -> dict[str, set[str]]:
    files = product_files()
    used: dict[str, set[str]] = {}
    for found in (private_imports(files), private_attributes(files), private_overrides(files)):
        for name, where in found.items():
            used.setdefault(name, set()).update(where)
    return used


def test_every_private_dagster_name_in_use_is_in_the_note():
    missing = {name: sorted(where) for name, where in in_use().items() if name not in documented()}
    assert not missing, (
        f"private Dagster names not listed in {NOTE.relative_to(ROOT)} (say why, or use a public name): {missing}"
    )


def test_every_name_in_the_note_is_still_used():
    stale = sorted(documented() - set(in_use()))
    assert not stale, f"{NOTE.relative_to(ROOT)} lists names no longer used (remove them): {stale}"


def test_private_names_stay_in_the_instance_package():
    outside = {name: sorted(w for w in where if not w.startswith(FENCE)) for name, where in in_use().items()}
    outside = {name: where for name, where in outside.items() if where}
    assert not outside, f"private Dagster names outside {FENCE}: {outside}"


def test_the_scan_sees_what_it_is_for():
    used = in_use()
    assert "dagster._core.storage.event_log.schema.SqlEventLogStorageTable" in used  # an import
    assert "_event_to_row" in used  # a call of a private method
    assert "_connect" in used  # an override (the product also defines _connect, so only the MRO walk sees it)
    assert not _is_private_module("dagster") and not _is_private_module("dagster_postgres.utils")
