"""One exception hierarchy: every exception class the platform defines derives from ``PairsError``.

Read from the source (no imports), so a class added in any module of ``pairs_assets``, ``resources``
or ``sensors`` that derives from ``Exception``/``ValueError``/… alone fails here, by name and file.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pairs_assets", "resources", "sensors")
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not issubclass(value, Warning)
}


def _classes() -> dict[str, tuple[list[str], str]]:
    """Every class of the packages: name -> (base names, where)."""
    found: dict[str, tuple[list[str], str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                    found.setdefault(node.name, (bases, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def _is_exception(name: str, classes, seen=()) -> bool:
    """An error class (warnings are not errors: they are issued, not raised)."""
    if name in BUILTIN_EXCEPTIONS:
        return True
    bases = classes.get(name, ([], ""))[0]
    return any(_is_exception(b, classes, (*seen, name)) for b in bases if b not in seen)


def _derives_from_pairs_error(name: str, classes, seen=()) -> bool:
    if name == "PairsError":
        return True
    bases = classes.get(name, ([], ""))[0]
    return any(_derives_from_pairs_error(b, classes, (*seen, name)) for b in bases if b not in seen)


def test_every_project_exception_derives_from_pairs_error():
    classes = _classes()
    exceptions = {name for name in classes if _is_exception(name, classes)}
    assert len(exceptions) >= 20, sorted(exceptions)  # the scan finds the platform's errors at all
    outside = [
        f"{name} ({classes[name][1]})"
        for name in sorted(exceptions)
        if name != "PairsError" and not _derives_from_pairs_error(name, classes)
    ]
    assert outside == [], "exceptions outside the PairsError hierarchy: " + ", ".join(outside)


def test_the_names_stay_importable_where_they_are_used():
    from pairs_assets.errors import PairsError
    from pairs_assets.live.stream import StreamError
    from pairs_assets.live.symbols import LiveSymbolsError
    from pairs_assets.market.wire import WireError
    from pairs_assets.quant.config_model import TradingConfigError
    from pairs_assets.quant.features import GRUTrainingError, InsufficientSequencesError
    from pairs_assets.quant.signals import SignalInputError
    from resources.broker import BrokerError
    from resources.market_data import StoreUnavailableError

    for error in (
        StreamError,
        LiveSymbolsError,
        WireError,
        TradingConfigError,
        GRUTrainingError,
        InsufficientSequencesError,
        SignalInputError,
        BrokerError,
        StoreUnavailableError,
    ):
        assert issubclass(error, PairsError), error
