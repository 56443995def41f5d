"""The single entry point: ``defs`` — assets, checks, jobs, schedules, sensors and resources.

Every command uses it: ``dagster dev -w workspace.yaml``, ``dg dev``, ``dagster job execute -m
pairs_assets.definitions …``, ``dagster asset materialize -m pairs_assets.definitions …`` and the
``pairs`` CLI.

:func:`build_definitions` builds everything from explicit inputs — a :class:`Paths` (home, universe
file, history start, stores, bar source) and a :class:`StrategySettings` — so two definitions with
different homes or histories can live in one process (the tests build their own). Only the
module-level ``defs`` below reads the environment (``paths()``): it is what the commands load.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from pairs_assets.assets.model_performance import model_rankings, model_trends
from pairs_assets.assets.paper_book import last_book_session, paper_book_asset
from pairs_assets.assets.raw_bars import raw_bars_asset
from pairs_assets.assets.stage_factory import stage_assets
from pairs_assets.assets.strategy_assets import plugin_assets, plugin_resources
from pairs_assets.assets.trading_signals import trading_signals_asset
from pairs_assets.assets.walk_forward import walk_forward
from pairs_assets.home import PairsHome
from pairs_assets.instance.run_recovery import with_run_heartbeat
from pairs_assets.jobs import daily_pairs, executor_for, model_performance_job, paper_book_job, signal_job
from pairs_assets.market.endpoints import (
    ANONYMOUS_RECYCLER_KEY,
    ENV_API_KEY,
    ENV_RECYCLER_KEY,
    ENV_RECYCLER_SECRET,
    ENV_SECRET_KEY,
    is_alpaca_url,
)
from pairs_assets.partitions import daily_partitions_def
from pairs_assets.quant.pipeline.garch_gru import PIPELINE
from pairs_assets.quant.pipeline.garch_gru import PIPELINE as GARCH_GRU_PIPELINE
from pairs_assets.settings import Paths, StrategySettings, paths
from pairs_assets.strategies.registry import strategies_file
from pairs_assets.universe import load_universe
from resources.alpaca_source import AlpacaBarSource
from resources.bar_sources import BarSource, EmbeddedBarSource, FileBarSource
from resources.broker import BrokerResource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import PRIMARY_STRATEGY, MarketDataStore
from resources.model_registry import ModelRegistry
from sensors.dead_runs import dead_run_recovery
from sensors.paper_book_schedule import build_paper_book_schedule
from sensors.performance import model_performance_refresh
from sensors.schedules import build_daily_pairs_schedule
from sensors.signal_sensor import build_signal_sensor
from sensors.strategy_control import daily_strategies, read_tick, signal_enabled, signal_fingerprint

# Two beta APIs we chose deliberately, used by every daily asset factory: without these filters
# `dagster asset materialize` / `dg launch` print the same notice for each asset built.
warnings.filterwarnings("ignore", message=r"Class `MultiPartitionMapping` is currently in beta")
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta")


def build_assets(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> list:
    """Every asset (with its checks); the daily ones on ``daily``'s partitions with ``strategy``'s lookbacks
    (the stage assets generated from the default pipeline, :data:`pairs_assets.quant.pipeline.garch_gru.PIPELINE`)."""
    return [
        raw_bars_asset(daily, strategy),
        *stage_assets(PIPELINE, daily, strategy),
        model_rankings,
        model_trends,
        trading_signals_asset(daily, strategy),
        paper_book_asset(daily),
        walk_forward,
    ]


def bar_source_for(p: Paths) -> BarSource:
    """``PAIRS_BAR_SOURCE``: ``alpaca`` (keys from the environment), ``file`` (``PAIRS_BARS_FILE``,
    the default when it is set) or ``embedded``."""
    if p.bar_source_kind == "alpaca":
        if p.alpaca_data_url is None or is_alpaca_url(p.alpaca_data_url):
            key, secret = dg.EnvVar(ENV_API_KEY), dg.EnvVar(ENV_SECRET_KEY)
        else:
            # Alpaca's keys go to Alpaca's own hosts over TLS only; any other data URL (the recycler)
            # gets the recycler's credentials, or the anonymous placeholder a keyless recycler accepts.
            # The resource applies the same rule (market.endpoints) to whatever a run's config gives it.
            have = os.environ.get(ENV_RECYCLER_KEY) and os.environ.get(ENV_RECYCLER_SECRET)
            key = dg.EnvVar(ENV_RECYCLER_KEY) if have else ANONYMOUS_RECYCLER_KEY
            secret = dg.EnvVar(ENV_RECYCLER_SECRET) if have else ANONYMOUS_RECYCLER_KEY
        return AlpacaBarSource(api_key=key, secret_key=secret, feed=p.alpaca_feed, url_override=p.alpaca_data_url)
    if p.bar_source_kind == "file":
        if p.bars_file is None:
            raise ValueError("PAIRS_BAR_SOURCE=file needs PAIRS_BARS_FILE")
        return FileBarSource(path=str(p.bars_file))
    if p.bar_source_kind != "embedded":
        raise ValueError(f"PAIRS_BAR_SOURCE must be embedded, file or alpaca, got {p.bar_source_kind!r}")
    return EmbeddedBarSource()


def broker_for(p: Paths) -> BrokerResource:
    """Dry-run unless ``PAIRS_BROKER`` says alpaca-paper / alpaca-live (keys from the environment)."""
    if p.broker_mode == "dry-run":
        return BrokerResource()
    return BrokerResource(mode=p.broker_mode, api_key=dg.EnvVar(ENV_API_KEY), secret_key=dg.EnvVar(ENV_SECRET_KEY))


def _url_setting(p: Paths, env_var: str, value: str) -> str:
    """``dg.EnvVar(env_var)`` when the URL came from that variable (the UI then shows its name, not a
    password), else the derived local default."""
    return dg.EnvVar(env_var) if env_var in p.url_env_vars else value


def home_resource_for(p: Paths) -> PairsHome:
    """The ``home`` resource of ``p``: where the stages find the universe, the history start and the
    trading configs' folder."""
    return PairsHome(
        home=str(p.home),
        outputs_dir=str(p.outputs_dir),
        universe_file=str(p.universe_file),
        history_start=p.history_start,
    )


def build_resources(p: Paths, strategy: StrategySettings | None = None) -> dict:
    return {
        "store": MarketDataStore(database_url=_url_setting(p, "PAIRS_DATABASE_URL", p.database_url)),
        "bar_source": bar_source_for(p),
        "strategy": strategy or StrategySettings(),
        "home": home_resource_for(p),
        "io_manager": PartitionedFileIOManager(base_dir=p.io_manager_base),
        "model_registry": ModelRegistry(
            tracking_uri=_url_setting(p, "MLFLOW_TRACKING_URI", p.mlflow_tracking_uri),
            local_store_dir=str(p.mlflow_dir),
            artifact_root=p.mlflow_artifacts or None,
        ),
        "broker": broker_for(p),
    }


def build_definitions(
    p: Paths, strategy: StrategySettings | None = None, *, strategies_path: Path | str | None = None
) -> dg.Definitions:
    """Assets, checks, jobs, schedule, sensors and resources of the home ``p``, the ``strategy``
    (default: the strategies file's primary strategy — ``garch_gru``, or ``seed`` enabled in its place —
    at the file's parameters; :class:`StrategySettings`' defaults when it gives none) and the other
    strategies the strategies file enables.

    The daily partitions are the sessions from ``p.history_start`` to the bar source's last session
    (the embedded dataset's or the file's last date, read once when the definitions load; Alpaca:
    open-ended) × the sectors of ``p.universe_file``; the 6 AM schedule skips past that session, the
    paper book's close schedule past the session after it (the book's last partition). The
    stages' declared lookbacks are ``strategy``'s windows, and the ``strategy`` resource is
    ``strategy`` (a launchpad override changes what a run reads).

    ``strategies_path``: the strategies file (default :func:`pairs_assets.strategies.registry.strategies_file`
    with ``p``'s home): every enabled strategy with a pipeline other than the primary gets its stages
    under ``<name>/…`` (:func:`pairs_assets.assets.strategy_assets.plugin_assets`); the schedule and the
    signal sensor re-read the file at every tick (:mod:`sensors.strategy_control`).
    """
    path = (
        Path(strategies_path)
        if strategies_path is not None
        else strategies_file({**os.environ, "PAIRS_HOME": str(p.home)})
    )
    chosen = daily_strategies(path)
    if strategy is None:
        primary = chosen.primary
        strategy = StrategySettings(**primary.params.model_dump()) if primary is not None else StrategySettings()
    sectors = load_universe(p.universe_file).sector_names
    resources = build_resources(p, strategy)
    last_session = resources["bar_source"].last_session()
    daily = daily_partitions_def(p.history_start, sectors, last_session)
    assets = build_assets(daily, strategy)
    stages = {PRIMARY_STRATEGY: [dg.AssetKey(name) for name in GARCH_GRU_PIPELINE.names]}
    for plugin in chosen.plugins:
        assets.extend(plugin_assets(plugin, daily))
        resources.update(plugin_resources(plugin))
        stages[plugin.name] = [dg.AssetKey([plugin.name, name]) for name in plugin.pipeline().names]
    failed = chosen.registry.failures
    note = (
        " Strategy entry points that failed to load: "
        + "; ".join(f"{f.name} ({f.reason})" for f in failed)
        + " — see `pairs strategies list`."
        if failed
        else ""
    )
    return dg.Definitions(
        assets=assets,
        jobs=[daily_pairs, model_performance_job, signal_job, paper_book_job],
        schedules=[
            build_daily_pairs_schedule(
                sectors,
                last_session,
                strategies=lambda: read_tick(path, chosen.loaded),
                stages=stages,
                note=note,
            ),
            build_paper_book_schedule(last_book_session(daily)),
        ],
        sensors=[
            model_performance_refresh,
            build_signal_sensor(
                sectors=sectors,
                enabled=signal_enabled(path, chosen.loaded),
                fingerprint=signal_fingerprint(path),
            ),
            dead_run_recovery,
        ],
        resources=resources,
        # the run worker tags its run with its host and keeps a heartbeat: what dead_run_recovery judges
        executor=with_run_heartbeat(executor_for(p.executor, p.celery_broker, p.celery_backend)),
    )


class DagsterHomeWarning(UserWarning):
    """``DAGSTER_HOME`` is unset: ``dagster job execute`` / ``asset materialize`` use a throwaway instance."""


_warned_dagster_home = False
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def stock_storage_reason(dagster_home: Path) -> str | None:
    """Why the instance at ``dagster_home`` gets Dagster's stock storage (no ``dagster.yaml``, or one
    naming none of the project's instance or storage classes in ``pairs_assets.instance``), else None."""
    import yaml

    config_file = dagster_home / "dagster.yaml"
    if not dagster_home.is_dir():
        return None  # not created yet: `pairs` creates it with the project's settings; Dagster refuses it
    if not config_file.exists():
        return "no dagster.yaml"
    try:
        config = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return f"its dagster.yaml cannot be read ({type(exc).__name__})"
    modules = [
        str(section.get("module", ""))
        for section in (config.values() if isinstance(config, dict) else [])
        if isinstance(section, dict)
    ]
    if any(module.startswith("pairs_assets.instance") for module in modules):
        return None
    return "its dagster.yaml names none of the project's instance settings (instance_class or storage in pairs_assets.instance)"


def warn_without_dagster_home(p: Paths | None = None) -> bool:
    """Warn (once per process) when ``DAGSTER_HOME`` is unset; return whether it warned.

    Without it, ``dagster job execute -m pairs_assets.definitions …`` runs on a temporary instance
    that is deleted when the command exits: the run, its materializations and its logs are lost and
    the UI never shows them (the bars and files it wrote stay). The ``pairs`` commands set it.
    """
    global _warned_dagster_home
    if _warned_dagster_home:
        return False
    if os.environ.get("DAGSTER_HOME"):
        stock = stock_storage_reason(Path(os.environ["DAGSTER_HOME"]))
        if stock is None:
            return False
        _warned_dagster_home = True
        warnings.warn(
            f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}: {stock}, so Dagster uses its stock storage — slow at this "
            f"project's partition counts (UI backfills, check status, the catalog). Run `pairs init` (it writes the "
            f"project's dagster.yaml there), or copy {PROJECT_ROOT / 'dagster.yaml'} (SQLite) or "
            f"{PROJECT_ROOT / 'deploy' / 'dagster.yaml'} (PostgreSQL) to it.",
            DagsterHomeWarning,
            stacklevel=2,
        )
        return True
    _warned_dagster_home = True
    home = (p or paths()).home / "dagster"  # the edge: the environment's home by default
    warnings.warn(
        f"DAGSTER_HOME is not set: a `dagster job execute` / `dagster asset materialize` run goes to a throwaway "
        f"instance and its runs, materializations and logs are lost. Run `pairs init`, then "
        f"`export DAGSTER_HOME={home}` (the instance `pairs dev` shows).",
        DagsterHomeWarning,
        stacklevel=2,
    )
    return True


# The edge: the commands (dagster dev, dg, dagster job execute, the pairs CLI) load this, built from
# the environment (PAIRS_HOME, PAIRS_HISTORY_START, PAIRS_UNIVERSE_FILE, …; settings.Paths.from_env).
defs = build_definitions(paths())
warn_without_dagster_home(paths())
