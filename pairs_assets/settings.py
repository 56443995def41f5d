"""Typed settings: where state lives (environment) and the strategy's windows and thresholds.

Two kinds of setting, each in one place:

* ``Paths`` — read once from the environment (``PAIRS_HOME``, ``PAIRS_DATABASE_URL``,
  ``PAIRS_BARS_FILE``, ``PAIRS_UNIVERSE_FILE``, ``PAIRS_HISTORY_START``, ``MLFLOW_TRACKING_URI``;
  for production ``PAIRS_IO_BASE``, ``PAIRS_EXECUTOR``, ``PAIRS_CELERY_BROKER``,
  ``PAIRS_CELERY_BACKEND``, ``PAIRS_MLFLOW_ARTIFACTS``).
* ``StrategySettings`` — the Dagster resource of the pure strategy model
  (:class:`pairs_assets.quant.strategy.Strategy`: its fields, defaults chosen on the development
  years 1995–2010 — preset ``default``; the seed design's corr ≥ 0.8 / composite > 0.7 / daily
  re-selection is preset ``seed`` — validators, presets and windows). Engle-Granger p < 0.05, GRU
  10/64/0.255/3e-4/32/50. Assets *and* asset checks read thresholds from it, so a gate always
  checks the threshold the asset used. Override any field per run in the launchpad
  (``resources: strategy: config: …``).

No threshold literal lives anywhere else: the defaults are stated once, in the pure model.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pairs_assets.data import (  # noqa: F401  (the embedded dataset's names, re-exported)
    EMBEDDED_BARS_FILE,
    EMBEDDED_HISTORY_START,
    EMBEDDED_LAST_SESSION,
    EMBEDDED_UNIVERSE_FILE,
)
from pairs_assets.quant.strategy import PRESETS, Strategy, StrategyError  # noqa: F401  (re-exported)

PACKAGE_DIR = Path(__file__).resolve().parent


def _default_home() -> Path:
    """``<project>/.pairs_home`` for a source checkout, else ``./.pairs_home``."""
    project_root = PACKAGE_DIR.parent
    if (project_root / "pyproject.toml").exists():
        return project_root / ".pairs_home"
    return Path.cwd() / ".pairs_home"


@dataclass(frozen=True)
class Paths:
    """Every local path and URL the platform uses, all derived from ``PAIRS_HOME`` by default."""

    home: Path
    database_url: str
    bars_file: Path | None
    universe_file: Path
    history_start: str
    mlflow_tracking_uri: str
    bar_source_kind: str = "embedded"
    alpaca_feed: str = "iex"
    alpaca_data_url: str | None = None
    broker_mode: str = "dry-run"
    # --- production (docs/production.md) -----------------------------------------------------
    io_base: str = ""
    executor: str = "in_process"
    celery_broker: str = ""
    celery_backend: str = "rpc://"
    mlflow_artifacts: str = ""
    #: ``PAIRS_SQLITE_FSYNC=1``: the ``pairs`` commands keep SQLite's fsync per Dagster event
    sqlite_fsync: bool = False
    #: environment variables that carried a URL (possibly with a password): resources get them
    #: as ``dg.EnvVar`` so the UI shows the variable's name, never its value.
    url_env_vars: frozenset[str] = frozenset()

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    @property
    def outputs_dir(self) -> Path:
        """Root of per-partition stage outputs: ``<outputs_dir>/<asset>/<date>/<sector>.parquet``.

        ``PAIRS_IO_BASE`` when it is a local (or shared, e.g. NFS) path, else ``PAIRS_HOME``.
        """
        if self.io_base and not is_url(self.io_base):
            return Path(self.io_base)
        return self.home

    @property
    def io_manager_base(self) -> str:
        """Where the IO manager keeps stage outputs: ``PAIRS_IO_BASE`` (a path or an fsspec URL
        such as ``s3://bucket/pairs``) or the local outputs folder."""
        return self.io_base or str(self.outputs_dir)

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = Path(env.get("PAIRS_HOME") or _default_home()).expanduser().resolve()
        bars = env.get("PAIRS_BARS_FILE")
        mlflow_dir = home / "mlflow"
        return cls(
            home=home,
            database_url=env.get("PAIRS_DATABASE_URL") or f"sqlite:///{home / 'market_data.sqlite'}",
            bars_file=Path(bars).expanduser().resolve() if bars else None,
            universe_file=Path(env.get("PAIRS_UNIVERSE_FILE") or EMBEDDED_UNIVERSE_FILE).expanduser().resolve(),
            history_start=env.get("PAIRS_HISTORY_START") or EMBEDDED_HISTORY_START,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            bar_source_kind=env.get("PAIRS_BAR_SOURCE") or ("file" if bars else "embedded"),
            alpaca_feed=env.get("PAIRS_ALPACA_FEED") or "iex",
            alpaca_data_url=env.get("PAIRS_ALPACA_DATA_URL") or None,
            broker_mode=env.get("PAIRS_BROKER") or "dry-run",
            io_base=_io_base(env.get("PAIRS_IO_BASE") or ""),
            executor=(env.get("PAIRS_EXECUTOR") or "in_process").replace("-", "_"),
            celery_broker=env.get("PAIRS_CELERY_BROKER") or "",
            celery_backend=env.get("PAIRS_CELERY_BACKEND") or "rpc://",
            mlflow_artifacts=_io_base(env.get("PAIRS_MLFLOW_ARTIFACTS") or ""),
            sqlite_fsync=env.get("PAIRS_SQLITE_FSYNC") == "1",
            url_env_vars=frozenset(name for name in ("PAIRS_DATABASE_URL", "MLFLOW_TRACKING_URI") if env.get(name)),
        )


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://…``) rather than a filesystem path."""
    return "://" in location and not location.startswith("file://")


def _io_base(location: str) -> str:
    """A path made absolute (``~`` expanded, ``file://`` stripped), or a URL unchanged."""
    if not location:
        return ""
    if location.startswith("file://"):
        location = location[len("file://") :]
    if is_url(location):
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


#: ``1``: the signal path trades on replayed bars (any source, market hours ignored) and says so
ENV_SIGNAL_REPLAY = "PAIRS_SIGNAL_REPLAY"
#: the store source whose bars are live (default: what ``pairs stream --alpaca`` writes)
ENV_LIVE_SOURCE = "PAIRS_LIVE_SOURCE"


def signal_replay_from_env(environ: dict | None = None) -> bool:
    """Replay mode of the signal path: ``PAIRS_SIGNAL_REPLAY`` is 1/true/yes/on. Read by the process
    that decides — the daemon's signal sensor at each tick (it passes the value to the run it
    requests), or the run's own process for a signal run launched by hand without ``replay``."""
    value = (os.environ if environ is None else environ).get(ENV_SIGNAL_REPLAY, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def live_source_from_env(environ: dict | None = None) -> str:
    """The live source: ``PAIRS_LIVE_SOURCE``, else ``alpaca:<PAIRS_ALPACA_FEED or iex>-stream`` —
    the label ``pairs stream --alpaca`` stores its bars under (the recycler's bars are ``recycler:<feed>``:
    replayed, never live)."""
    env = os.environ if environ is None else environ
    return (
        env.get(ENV_LIVE_SOURCE) or ""
    ).strip() or f"alpaca:{(env.get('PAIRS_ALPACA_FEED') or 'iex').strip()}-stream"


@functools.cache
def paths() -> Paths:
    """The process's paths, read from the environment once."""
    return Paths.from_env()


class StrategySettings(dg.ConfigurableResource, Strategy):
    """Windows (in sessions) and thresholds of the daily graph and the signal job: the Dagster
    resource of the pure :class:`pairs_assets.quant.strategy.Strategy`.

    Every field, default, bound, description, validator and derived window is the pure model's
    (inherited, stated once), so the launchpad's ``resources: strategy: config:`` schema is the
    model's. The numerics take the pure model: :meth:`strategy` returns it.
    Every window counts NYSE sessions ending at (and including) the partition's as-of session.
    """

    # Dagster's resource config (frozen, arbitrary types), not the pure model's extra="forbid":
    # the resource carries Dagster's private attributes.
    model_config = {**dg.ConfigurableResource.model_config, "extra": "ignore"}


#: Named strategy settings (``default``, ``trading_period``, ``seed``): see
#: :data:`pairs_assets.quant.strategy.PRESETS`.
DEFAULT_STRATEGY = StrategySettings()
