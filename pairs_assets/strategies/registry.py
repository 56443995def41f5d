"""The strategy registry: which strategies exist and which are switched on, below Dagster.

Two sources:

* **entry points** of the group ``pairs_assets.strategies`` (``name = "package.module:Class"`` in a
  distribution's metadata; the built-ins ``garch_gru``, ``seed`` and ``baseline`` are registered in
  the project's own ``pyproject.toml``). An entry point that fails to import is recorded as a
  failure (its name and the reason, one line) and the others still load;
* a **strategies file** (YAML): a list of entries, or a mapping of name → entry, each with

  ``name``
      the strategy's name (:data:`~pairs_assets.strategies.base.NAME_PATTERN`; the key of a mapping);
  ``class``
      an entry point's name (``garch_gru``) or a ``module:Class`` path;
  ``params``
      a mapping validated by the class's :attr:`~pairs_assets.strategies.base.StrategyPlugin.Params`
      (its defaults for what is left out);
  ``enabled``
      true (the default) or false.

  The file is ``$PAIRS_STRATEGIES_FILE``, else ``<PAIRS_HOME>/strategies.yaml`` when it exists,
  else the shipped default (``pairs_assets/data/strategies.yaml``: ``garch_gru`` enabled; ``seed``,
  ``baseline`` and ``distance`` listed, disabled). A bad file fails as a whole with its first
  error (:class:`~pairs_assets.strategies.base.StrategyPluginError`, one line naming the file, the
  entry and the field): nothing is registered half-way.

:func:`load_registry` re-reads the file only when its modification time or size changed, so it is
cheap to call at every sensor tick or run: switching a strategy on or off, or changing its
thresholds, takes effect without restarting the code server.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from pairs_assets.strategies.base import NAME_PATTERN, StrategyPlugin, StrategyPluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_FILE",
    "EntryPointFailure",
    "Registry",
    "StrategyEntry",
    "default_strategies_file",
    "discover",
    "load_registry",
    "read_registry",
    "strategies_file",
]

#: The entry-point group strategies register under.
ENTRY_POINT_GROUP = "pairs_assets.strategies"
#: The environment variable naming the strategies file.
ENV_FILE = "PAIRS_STRATEGIES_FILE"
_ENTRY_KEYS = {"name", "class", "params", "enabled"}


def default_strategies_file() -> Path:
    """The shipped strategies file (``garch_gru`` enabled; ``seed``, ``baseline``, ``distance`` off)."""
    return Path(__file__).resolve().parents[1] / "data" / "strategies.yaml"


def strategies_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$PAIRS_STRATEGIES_FILE``, else ``<PAIRS_HOME>/strategies.yaml`` when it exists, else the
    shipped default."""
    environ = os.environ if environ is None else environ
    named = environ.get(ENV_FILE, "").strip()
    if named:
        return Path(named).expanduser()
    home = environ.get("PAIRS_HOME", "").strip()
    if home:
        candidate = Path(home).expanduser() / "strategies.yaml"
        if candidate.is_file():
            return candidate
    return default_strategies_file()


@dataclass(frozen=True)
class EntryPointFailure:
    """An entry point that could not be loaded: its name and why (one line)."""

    name: str
    reason: str


@dataclass(frozen=True)
class StrategyEntry:
    """One strategy of the file: its name, class, (validated) instance and whether it is on."""

    name: str
    class_ref: str
    cls: type[StrategyPlugin]
    plugin: StrategyPlugin
    enabled: bool
    given: dict = field(default_factory=dict)  # the params as the file gives them


@dataclass(frozen=True)
class Registry:
    """The strategies of one read of the file (in its order), the entry points found and the failed.

    Attributes
    ----------
    path : Path
        The strategies file read.
    entries : dict of str to StrategyEntry
    classes : dict of str to type
        Entry-point name → the class it loaded.
    failures : tuple of EntryPointFailure
    unavailable : dict of str to str
        Entries of the file whose class is an entry point that failed to load → the reason (not
        registered; the others are).
    fingerprint : str
        sha256 (16 hex) of the file's bytes: which strategies file a run saw (for run tags).
    """

    path: Path
    entries: dict[str, StrategyEntry]
    classes: dict[str, type[StrategyPlugin]]
    failures: tuple[EntryPointFailure, ...]
    fingerprint: str
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> list[StrategyEntry]:
        return [e for e in self.entries.values() if e.enabled]

    def get(self, name: str) -> StrategyEntry:
        """The entry named ``name``, or one line listing the known names."""
        if name in self.unavailable:
            raise StrategyPluginError(f"strategy {name!r} is unavailable: {self.unavailable[name]}")
        if name not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise StrategyPluginError(f"unknown strategy {name!r} in {self.path} (known: {known})")
        return self.entries[name]

    def build(self, name: str, overrides: Mapping[str, object] | None = None) -> StrategyPlugin:
        """A fresh instance of strategy ``name`` with ``overrides`` on the file's parameters
        (validated by its schema)."""
        entry = self.get(name)
        if not overrides:
            return entry.plugin
        return entry.cls(name, {**entry.plugin.params.model_dump(), **overrides})


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def discover(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> tuple[dict[str, type[StrategyPlugin]], tuple[EntryPointFailure, ...]]:
    """Load the strategy classes registered as entry points (group :data:`ENTRY_POINT_GROUP`).

    Parameters
    ----------
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        Those to load (default: the installed distributions' of the group).

    Returns
    -------
    (classes, failures)
        Name → class of those that loaded; the others with a one-line reason each (an import error,
        not a StrategyPlugin subclass, one name registered twice with different targets).
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    classes: dict[str, type[StrategyPlugin]] = {}
    targets: dict[str, str] = {}
    failures: list[EntryPointFailure] = []
    for ep in entry_points:
        if ep.name in targets:
            if targets[ep.name] != ep.value:
                failures.append(
                    EntryPointFailure(
                        ep.name, f"registered twice: {targets[ep.name]} and {ep.value}; the first is used"
                    )
                )
            continue
        targets[ep.name] = ep.value
        try:
            loaded = ep.load()
        except Exception as exc:  # any import failure is reported; the rest still load
            failures.append(EntryPointFailure(ep.name, f"{ep.value} failed to import: {_one_line(exc)}"))
            continue
        if not (isinstance(loaded, type) and issubclass(loaded, StrategyPlugin)):
            failures.append(EntryPointFailure(ep.name, f"{ep.value} is not a StrategyPlugin subclass"))
            continue
        classes[ep.name] = loaded
    return classes, tuple(failures)


def _resolve_class(ref: str, classes: Mapping[str, type], where: str) -> type[StrategyPlugin]:
    if ":" not in ref:
        if ref in classes:
            return classes[ref]
        known = ", ".join(sorted(classes)) or "none"
        raise StrategyPluginError(
            f"{where}: class {ref!r} is neither a registered strategy (known: {known}) nor a module:Class path"
        )
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure, named in one line
        raise StrategyPluginError(
            f"{where}: class {ref!r}: module {module_name!r} failed to import: {_one_line(exc)}"
        ) from None
    try:
        cls = module
        for part in attribute.split("."):
            cls = getattr(cls, part)
    except AttributeError:
        raise StrategyPluginError(f"{where}: class {ref!r}: {module_name} has no {attribute!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, StrategyPlugin)):
        raise StrategyPluginError(f"{where}: class {ref!r} is not a StrategyPlugin subclass")
    return cls


def _entries_of(data, path: Path) -> list[tuple[str, dict]]:
    """The file's entries as (label for messages, mapping), in order."""
    if data is None:
        return []
    if isinstance(data, Mapping) and "strategies" in data and len(data) == 1:
        data = data["strategies"]
    if isinstance(data, list):
        out = []
        for i, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise StrategyPluginError(f"{path}: entry {i + 1}: expected a mapping with name and class")
            label = f"entry {i + 1}" + (f" ({item['name']!r})" if isinstance(item.get("name"), str) else "")
            out.append((label, dict(item)))
        return out
    if isinstance(data, Mapping):
        out = []
        for key, item in data.items():
            if not isinstance(item, Mapping):
                raise StrategyPluginError(f"{path}: strategy {key!r}: expected a mapping with class (and params)")
            item = dict(item)
            if "name" in item and item["name"] != key:
                raise StrategyPluginError(f"{path}: strategy {key!r}: name {item['name']!r} differs from its key")
            item["name"] = key
            out.append((f"strategy {key!r}", item))
        return out
    raise StrategyPluginError(f"{path}: expected a list of strategies or a mapping of name to strategy")


def read_registry(
    path: Path | str | None = None,
    *,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    classes: tuple[dict, tuple] | None = None,
) -> Registry:
    """Read and validate a strategies file (default :func:`strategies_file`) against the entry points.

    Parameters
    ----------
    path : path, optional
    entry_points : iterable of EntryPoint, optional
        The entry points to load (default: the installed ones of :data:`ENTRY_POINT_GROUP`).
    classes : (dict, tuple), optional
        :func:`discover`'s answer, when already loaded.

    Returns
    -------
    Registry

    Raises
    ------
    StrategyPluginError
        The file's first error, in one line naming the file, the entry and the field.
    """
    path = Path(path) if path is not None else strategies_file()
    found, failures = classes if classes is not None else discover(entry_points)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StrategyPluginError(f"strategies file {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise StrategyPluginError(f"strategies file {path}: not valid YAML{where}") from None
    entries: dict[str, StrategyEntry] = {}
    unavailable: dict[str, str] = {}
    failed = {f.name: f.reason for f in failures}
    for label, item in _entries_of(data, path):
        where = f"{path}: {label}"
        unknown = sorted(set(item) - _ENTRY_KEYS)
        if unknown:
            raise StrategyPluginError(
                f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_ENTRY_KEYS))})"
            )
        name = item.get("name")
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            raise StrategyPluginError(
                f"{where}: name {name!r} must be lower-case letters, digits and _, starting with a letter, "
                "at most 40 characters"
            )
        if name in entries or name in unavailable:
            raise StrategyPluginError(f"{where}: name {name!r} is given twice; strategy names must be unique")
        ref = item.get("class")
        if not isinstance(ref, str) or not ref.strip():
            raise StrategyPluginError(f"{where}: class is missing (an entry-point name or module:Class)")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise StrategyPluginError(f"{where}: enabled {enabled!r} must be true or false")
        params = item.get("params") or {}
        if not isinstance(params, Mapping):
            raise StrategyPluginError(f"{where}: params must be a mapping of parameter to value")
        if ref.strip() in failed and ref.strip() not in found:  # listed with the failures; the rest load
            unavailable[name] = f"entry point {ref.strip()!r}: {failed[ref.strip()]}"
            continue
        cls = _resolve_class(ref.strip(), found, where)
        try:
            plugin = cls(name, dict(params))
        except StrategyPluginError as exc:
            raise StrategyPluginError(f"{path}: {exc}") from None
        entries[name] = StrategyEntry(name, ref.strip(), cls, plugin, enabled, dict(params))
    fingerprint = hashlib.sha256(raw).hexdigest()[:16]
    return Registry(path, entries, dict(found), tuple(failures), fingerprint, unavailable)


_CACHE: dict[str, tuple[tuple, Registry]] = {}
_LOCK = threading.Lock()


def load_registry(path: Path | str | None = None, *, entry_points=None) -> Registry:
    """:func:`read_registry`, re-read only when the file's modification time or size (or its
    location) changed since the last call: cheap at every sensor tick, so an edit of the file
    takes effect at the next one without restarting the code server.

    A file that fails keeps failing (and is re-read) until fixed; the entry points are loaded once per
    process unless ``entry_points`` is given.
    """
    path = Path(path) if path is not None else strategies_file()
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        stamp = None
    key = str(path.resolve() if stamp is not None else path)
    with _LOCK:
        cached = _CACHE.get(key)
        if stamp is not None and entry_points is None and cached is not None and cached[0] == stamp:
            return cached[1]
    registry = read_registry(path, entry_points=entry_points, classes=None if entry_points else _classes())
    if stamp is not None and entry_points is None:
        with _LOCK:
            _CACHE[key] = (stamp, registry)
    return registry


_CLASSES: list = []


def _classes() -> tuple[dict, tuple]:
    """The installed entry points, loaded once per process."""
    with _LOCK:
        if not _CLASSES:
            _CLASSES.append(discover())
        return _CLASSES[0]
