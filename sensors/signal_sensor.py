"""The 5-minute signal sensor: a ``signal_job`` run per (strategy, sector) when there is something new to trade on.

Every tick (at least ``minimum_interval_seconds`` = 300 s apart) the sensor asks ``enabled()`` for the
enabled strategies and their live rule settings — read afresh at every tick (the integrator wires it
to the strategies file), so enabling, disabling or re-tuning a strategy needs no restart of the code
server; a disabled strategy gets no run (its held positions are still counted by every other
strategy's account risk check). Then for each enabled strategy and each sector of the universe:

1. the strategy's latest trading config of the sector is read from the store and parsed with the typed model;
   none, one that is not a JSON object (truncated, empty, an array), or one of an unknown
   ``schema_version`` or with a malformed field → skip that sector only (reason: the parse error,
   which names the partition, the file and the version or the field);
2. its partition ``<as_of>|<sector>`` must have a ``trading_config`` materialization in this
   Dagster instance (the run's upstream; ``<strategy>/trading_config`` for a strategy other than the
   primary ``garch_gru``); none → skip (reason);
3. outside replay mode, NYSE must be open now and the config must be for today's session
   (its ``effective_session``); in replay mode (``PAIRS_SIGNAL_REPLAY=1`` or ``replay=True``)
   market hours are ignored and the current session is the config's effective session;
4. a bar of the config's symbols must have arrived after both the sector's cursor and the as-of
   session's close — outside replay mode a bar of the live source (``PAIRS_LIVE_SOURCE``, default
   ``alpaca:<feed>-stream``, and its proxy stand-ins): a recycler's replayed bars never trigger a run;
   none → skip (reason, naming the other sources' bars it ignored).

Then it requests ``RunRequest(partition_key="<as_of>|<sector>", run_key="signals:<sector>:<as_of>:<latest bar>")``
(``signals:<strategy>:<sector>:…`` for a strategy other than the primary one) — the run key
deduplicates: the same bars never trigger two runs of a strategy — with run config
``bar_cutoff = <latest bar>`` so the run uses exactly the bars the sensor saw, the sensor's
``replay`` and ``live_source`` (the daemon's ``PAIRS_SIGNAL_REPLAY``: the run process needs none),
``strategy`` (other than the primary) and the strategy's rule settings (``on_drop``,
``max_holding``, …: :data:`RULE_SETTINGS`). The run is tagged ``pairs/strategy=<name>``,
``pairs/strategy_rule=<its rule settings, JSON>`` and, when the registry gives one,
``pairs/strategies_fingerprint=<the strategies file's fingerprint>``: a change of the file shows in
the runs it launched. The cursor (JSON: ``<sector>`` for the primary strategy,
``<strategy>/<sector>`` for the others → latest bar seen) advances for the requested ones only.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.errors import PairsError
from pairs_assets.quant.config_model import TradingConfig, TradingConfigError
from pairs_assets.settings import ENV_SIGNAL_REPLAY, live_source_from_env, signal_replay_from_env
from pairs_assets.util import to_utc
from resources.market_data import PRIMARY_STRATEGY, MarketDataStore

SIGNAL_JOB_NAME = "signal_job"
SIGNAL_ASSET = "trading_signals"
ENV_REPLAY = ENV_SIGNAL_REPLAY
MINIMUM_INTERVAL_SECONDS = 300

#: the signal job's settings a strategy's live rule settings may set (``SignalRunConfig`` fields)
RULE_SETTINGS = (
    "on_drop",
    "max_holding",
    "trade_on_drift",
    "drift_window",
    "drift_tolerance",
    "history_sessions",
    "execute",
)

#: what ``enabled()`` returns: (strategy name, its live rule settings) per enabled strategy
EnabledStrategies = Sequence[tuple[str, Mapping]]


def primary_only() -> EnabledStrategies:
    """The default ``enabled``: today's strategy alone, with the signal job's default rule settings."""
    return [(PRIMARY_STRATEGY, {})]


def strategy_key(strategy: str, sector: str) -> str:
    """The cursor's and the skip reasons' key of a (strategy, sector): the sector alone for the primary
    strategy (as before strategies existed), ``<strategy>/<sector>`` for the others."""
    return sector if strategy == PRIMARY_STRATEGY else f"{strategy}/{sector}"


def trading_config_key(strategy: str) -> dg.AssetKey:
    """The strategy's ``trading_config`` asset: bare for the primary, under its name's prefix otherwise."""
    return dg.AssetKey("trading_config") if strategy == PRIMARY_STRATEGY else dg.AssetKey([strategy, "trading_config"])


def rule_settings(strategy: str, settings: Mapping) -> dict:
    """``settings`` checked against the signal job's config: the ones it takes, validated.

    Raises
    ------
    StrategyRuleError
        A setting the signal job does not take, or a value it refuses (one line naming both).
    """
    from pydantic import ValidationError

    from pairs_assets.assets.trading_signals import SignalRunConfig

    settings = dict(settings)
    unknown = sorted(set(settings) - set(RULE_SETTINGS))
    if unknown:
        raise StrategyRuleError(
            f"strategy {strategy}: rule setting {unknown[0]!r} is not one of the signal job's {', '.join(RULE_SETTINGS)}"
        )
    try:
        SignalRunConfig(strategy=strategy, **settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise StrategyRuleError(f"strategy {strategy}: rule setting {where}: {first.get('msg')}") from None
    return {name: settings[name] for name in sorted(settings)}


class StrategyRuleError(PairsError, ValueError):
    """A strategy's live rule settings the signal job cannot take; names the strategy and the setting."""


def replay_from_env(environ: dict | None = None) -> bool:
    """``PAIRS_SIGNAL_REPLAY`` of the process evaluating the sensor: the daemon's (``dagster-daemon``,
    or ``dg dev`` / ``pairs dev`` locally)."""
    return signal_replay_from_env(environ)


@dataclass
class TickResult:
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    cursor: dict[str, str] = field(default_factory=dict)

    def skip_reason(self) -> str:
        return "; ".join(f"{sector}: {reason}" for sector, reason in sorted(self.skipped.items())) or "nothing to do"


def held_symbols(store: MarketDataStore, sector: str, strategy: str = PRIMARY_STRATEGY) -> set[str]:
    """The legs of the strategy's held pairs of the sector: a pair dropped from today's config is still
    managed (``on_drop``, ``max_holding``, stops), so its bars must trigger a run even when the config
    selects no pair at all."""
    from pairs_assets.assets.trading_signals import read_pair_states

    held = [st for st in read_pair_states(store, sector, strategy).values() if st.side != 0]
    return {leg for st in held for leg in (st.y, st.x)}


def _materialized(instance: dg.DagsterInstance, partition_key: str, strategy: str = PRIMARY_STRATEGY) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=trading_config_key(strategy), asset_partitions=[partition_key]), limit=1
    )
    return bool(records.records)


def evaluate_tick(
    *,
    store: MarketDataStore,
    instance: dg.DagsterInstance,
    cursor: dict[str, str],
    now: pd.Timestamp,
    replay: bool,
    sectors: list[str],
    live_source: str | None = None,
    strategies: EnabledStrategies | None = None,
    fingerprint: str | None = None,
) -> TickResult:
    """The sensor's decision for one tick (see the module docstring); no side effects. ``strategies``:
    the enabled (name, rule settings) — default :func:`primary_only`; ``fingerprint``: the strategies
    file's, recorded in the runs' tags."""
    result = TickResult(cursor=dict(cursor))
    calendar = partitions.nyse_calendar()
    now = to_utc(now)
    today: str | None = None
    if not replay:
        minute = now.floor("min")
        if not calendar.is_open_on_minute(minute):
            result.skipped["*"] = (
                f"NYSE is closed at {now.isoformat(timespec='seconds')} "
                f"(set {ENV_REPLAY}=1 to run signals on replayed bars at any time)"
            )
            return result
        today = str(calendar.minute_to_session(minute).date())
    for strategy, raw_settings in primary_only() if strategies is None else strategies:
        try:
            settings = rule_settings(strategy, raw_settings)
        except StrategyRuleError as exc:
            result.skipped[strategy_key(strategy, "*")] = str(exc)  # this strategy only; the others still trade
            continue
        for sector in sectors:
            _evaluate_sector(
                result,
                store=store,
                instance=instance,
                cursor=cursor,
                replay=replay,
                today=today,
                sector=sector,
                live_source=live_source,
                strategy=strategy,
                settings=settings,
                fingerprint=fingerprint,
            )
    return result


def _evaluate_sector(
    result: TickResult,
    *,
    store: MarketDataStore,
    instance: dg.DagsterInstance,
    cursor: dict[str, str],
    replay: bool,
    today: str | None,
    sector: str,
    live_source: str | None,
    strategy: str,
    settings: dict,
    fingerprint: str | None,
) -> None:
    key = strategy_key(strategy, sector)
    stored = store.latest_trading_config_record(sector, strategy=strategy)
    asset = trading_config_key(strategy).to_user_string()
    if stored is None:
        result.skipped[key] = f"no trading config in the store (materialize {asset} first)"
        return
    try:
        # an unreadable document (truncated, empty, not an object) skips this sector only
        config = TradingConfig.parse_stored(stored.text, partition=stored.partition_key, path=stored.path)
    except TradingConfigError as exc:
        # a run on it would fail with the same error: say why here instead of requesting it
        result.skipped[key] = str(exc)
        return
    as_of = config.as_of_session
    effective = config.effective_session
    partition_key = f"{as_of}|{sector}"
    if not _materialized(instance, partition_key, strategy):
        result.skipped[key] = f"{asset} {partition_key} is in the store but not materialized in this instance"
        return
    if today is not None and effective != today:
        result.skipped[key] = f"latest trading config is for session {effective}, not today's session {today}"
        return
    try:
        held = held_symbols(store, sector, strategy)
    except PairsError as exc:
        # the run would fail on the same state row: say why here instead of requesting it
        result.skipped[key] = str(exc)
        return
    symbols = sorted({s for pair in config.pairs for s in (pair.y, pair.x)} | held)
    if not symbols:
        result.skipped[key] = f"trading config {partition_key} selects no pairs and none is held"
        return
    # outside replay mode only the live source's bars count (a recycler's replayed bars never trigger)
    only = None if replay else (live_source or live_source_from_env())
    latest = store.latest_bar_timestamp(symbols, live_source=only)
    threshold = partitions.session_close_utc(as_of)
    if key in cursor:
        threshold = max(threshold, pd.Timestamp(cursor[key]))
    if latest is None or latest <= threshold:
        of = "" if only is None else f" from the live source {only!r}"
        result.skipped[key] = f"no new bars of {', '.join(symbols)}{of} since {threshold.isoformat()}"
        if only is not None:
            other = store.latest_bar_timestamp(symbols)
            if other is not None and other > threshold:
                result.skipped[key] += (
                    f" (bars of other sources up to {other.isoformat()} ignored: replay mode is off; "
                    f"set {ENV_REPLAY}=1 for the daemon to trade on replayed bars)"
                )
        return
    latest_iso = latest.isoformat()
    primary = strategy == PRIMARY_STRATEGY
    stamp = latest.strftime("%Y%m%dT%H%M%S%f")
    tags = {
        "pairs/sector": sector,
        "pairs/trigger": "signal_sensor",
        "pairs/replay": str(replay).lower(),
        "pairs/strategy": strategy,
        "pairs/strategy_rule": json.dumps(settings, sort_keys=True),
    }
    if fingerprint:
        tags["pairs/strategies_fingerprint"] = fingerprint
    result.run_requests.append(
        dg.RunRequest(
            run_key=f"signals:{sector}:{as_of}:{stamp}" if primary else f"signals:{strategy}:{sector}:{as_of}:{stamp}",
            partition_key=partition_key,
            run_config={
                "ops": {
                    SIGNAL_ASSET: {
                        "config": {
                            "bar_cutoff": latest_iso,
                            "replay": replay,
                            **({} if only is None else {"live_source": only}),
                            **({} if primary else {"strategy": strategy}),
                            **settings,
                        }
                    }
                }
            },
            tags=tags,
        )
    )
    result.cursor[key] = latest_iso


def build_signal_sensor(
    *,
    sectors: Sequence[str],
    name: str = "signal_sensor",
    job_name: str = SIGNAL_JOB_NAME,
    replay: bool | None = None,
    live_source: str | None = None,
    minimum_interval_seconds: int = MINIMUM_INTERVAL_SECONDS,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    clock: Callable[[], pd.Timestamp] | None = None,
    enabled: Callable[[], EnabledStrategies] = primary_only,
    fingerprint: Callable[[], str | None] | None = None,
) -> dg.SensorDefinition:
    """The signal sensor over ``sectors`` (the daily partitions' sectors). ``replay=None`` reads
    ``PAIRS_SIGNAL_REPLAY`` at every tick, ``live_source=None`` ``PAIRS_LIVE_SOURCE`` (default
    ``alpaca:<feed>-stream``) — both in the daemon's environment. ``enabled`` is called at every tick
    for the enabled strategies and their rule settings (the integrator's ``registry.load_registry()``
    adapter; a :class:`~pairs_assets.errors.PairsError` from it skips the tick naming it), and
    ``fingerprint`` (when given) for the strategies file's fingerprint recorded in the runs' tags."""
    sectors = list(sectors)

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Every 5 minutes: a signal_job run per enabled strategy and sector whose trading config is for "
        "the current session and whose pairs got new bars (market hours only, unless PAIRS_SIGNAL_REPLAY=1).",
    )
    def _signal_sensor(context: dg.SensorEvaluationContext, store: MarketDataStore) -> dg.SensorResult | dg.SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        now = clock() if clock is not None else pd.Timestamp.now(tz="UTC")
        try:  # the strategies file, read at every tick: a change needs no restart
            strategies = list(enabled())
            registry_fingerprint = fingerprint() if fingerprint is not None else None
        except PairsError as exc:
            context.log.error(f"signal sensor: strategies unreadable, no run requested: {exc}")
            return dg.SkipReason(f"strategies unreadable: {exc}")
        result = evaluate_tick(
            store=store,
            instance=context.instance,
            cursor=cursor,
            now=now,
            replay=replay_from_env() if replay is None else replay,
            sectors=sectors,
            live_source=live_source,
            strategies=strategies,
            fingerprint=registry_fingerprint,
        )
        for sector, reason in sorted(result.skipped.items()):
            context.log.info(f"signal sensor: {sector}: {reason}")
        if not result.run_requests:
            return dg.SkipReason(result.skip_reason())
        return dg.SensorResult(run_requests=result.run_requests, cursor=json.dumps(result.cursor, sort_keys=True))

    return _signal_sensor
