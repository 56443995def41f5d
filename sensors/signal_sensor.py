"""The 5-minute signal sensor: a ``signal_job`` run per sector when there is something new to trade on.

Every tick (at least ``minimum_interval_seconds`` = 300 s apart), for each sector of the universe:

1. the sector's latest trading config is read from the store and parsed with the typed model;
   none, one that is not a JSON object (truncated, empty, an array), or one of an unknown
   ``schema_version`` or with a malformed field → skip that sector only (reason: the parse error,
   which names the partition, the file and the version or the field);
2. its partition ``<as_of>|<sector>`` must have a ``trading_config`` materialization in this
   Dagster instance (the run's upstream); none → skip (reason);
3. outside replay mode, NYSE must be open now and the config must be for today's session
   (its ``effective_session``); in replay mode (``PAIRS_SIGNAL_REPLAY=1`` or ``replay=True``)
   market hours are ignored and the current session is the config's effective session;
4. a bar of the config's symbols must have arrived after both the sector's cursor and the as-of
   session's close — outside replay mode a bar of the live source (``PAIRS_LIVE_SOURCE``, default
   ``alpaca:<feed>-stream``, and its proxy stand-ins): a recycler's replayed bars never trigger a run;
   none → skip (reason, naming the other sources' bars it ignored).

Then it requests ``RunRequest(partition_key="<as_of>|<sector>", run_key="signals:<sector>:<as_of>:<latest bar>")``
— the run key deduplicates: the same bars never trigger two runs — with run config
``bar_cutoff = <latest bar>`` so the run uses exactly the bars the sensor saw, and the sensor's
``replay`` and ``live_source`` (the daemon's ``PAIRS_SIGNAL_REPLAY``: the run process needs none). The cursor (JSON:
sector → latest bar seen) advances for the requested sectors only.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.errors import PairsError
from pairs_assets.quant.config_model import TradingConfig, TradingConfigError
from pairs_assets.settings import ENV_SIGNAL_REPLAY, live_source_from_env, signal_replay_from_env
from pairs_assets.util import to_utc
from resources.market_data import MarketDataStore

SIGNAL_JOB_NAME = "signal_job"
SIGNAL_ASSET = "trading_signals"
ENV_REPLAY = ENV_SIGNAL_REPLAY
MINIMUM_INTERVAL_SECONDS = 300


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


def held_symbols(store: MarketDataStore, sector: str) -> set[str]:
    """The legs of the sector's held pairs: a pair dropped from today's config is still managed
    (``on_drop``, ``max_holding``, stops), so its bars must trigger a run even when the config
    selects no pair at all."""
    from pairs_assets.assets.trading_signals import read_pair_states

    held = [st for st in read_pair_states(store, sector).values() if st.side != 0]
    return {leg for st in held for leg in (st.y, st.x)}


def _materialized(instance: dg.DagsterInstance, partition_key: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("trading_config"), asset_partitions=[partition_key]), limit=1
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
) -> TickResult:
    """The sensor's decision for one tick (see the module docstring); no side effects."""
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
    for sector in sectors:
        stored = store.latest_trading_config_record(sector)
        if stored is None:
            result.skipped[sector] = "no trading config in the store (materialize trading_config first)"
            continue
        try:
            # an unreadable document (truncated, empty, not an object) skips this sector only
            config = TradingConfig.parse_stored(stored.text, partition=stored.partition_key, path=stored.path)
        except TradingConfigError as exc:
            # a run on it would fail with the same error: say why here instead of requesting it
            result.skipped[sector] = str(exc)
            continue
        as_of = config.as_of_session
        effective = config.effective_session
        partition_key = f"{as_of}|{sector}"
        if not _materialized(instance, partition_key):
            result.skipped[sector] = (
                f"trading_config {partition_key} is in the store but not materialized in this instance"
            )
            continue
        if today is not None and effective != today:
            result.skipped[sector] = f"latest trading config is for session {effective}, not today's session {today}"
            continue
        try:
            held = held_symbols(store, sector)
        except PairsError as exc:
            # the run would fail on the same state row: say why here instead of requesting it
            result.skipped[sector] = str(exc)
            continue
        symbols = sorted({s for pair in config.pairs for s in (pair.y, pair.x)} | held)
        if not symbols:
            result.skipped[sector] = f"trading config {partition_key} selects no pairs and none is held"
            continue
        # outside replay mode only the live source's bars count (a recycler's replayed bars never trigger)
        only = None if replay else (live_source or live_source_from_env())
        latest = store.latest_bar_timestamp(symbols, live_source=only)
        threshold = partitions.session_close_utc(as_of)
        if sector in cursor:
            threshold = max(threshold, pd.Timestamp(cursor[sector]))
        if latest is None or latest <= threshold:
            of = "" if only is None else f" from the live source {only!r}"
            result.skipped[sector] = f"no new bars of {', '.join(symbols)}{of} since {threshold.isoformat()}"
            if only is not None:
                other = store.latest_bar_timestamp(symbols)
                if other is not None and other > threshold:
                    result.skipped[sector] += (
                        f" (bars of other sources up to {other.isoformat()} ignored: replay mode is off; "
                        f"set {ENV_REPLAY}=1 for the daemon to trade on replayed bars)"
                    )
            continue
        latest_iso = latest.isoformat()
        result.run_requests.append(
            dg.RunRequest(
                run_key=f"signals:{sector}:{as_of}:{latest.strftime('%Y%m%dT%H%M%S%f')}",
                partition_key=partition_key,
                run_config={
                    "ops": {
                        SIGNAL_ASSET: {
                            "config": {
                                "bar_cutoff": latest_iso,
                                "replay": replay,
                                **({} if only is None else {"live_source": only}),
                            }
                        }
                    }
                },
                tags={"pairs/sector": sector, "pairs/trigger": "signal_sensor", "pairs/replay": str(replay).lower()},
            )
        )
        result.cursor[sector] = latest_iso
    return result


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
) -> dg.SensorDefinition:
    """The signal sensor over ``sectors`` (the daily partitions' sectors). ``replay=None`` reads
    ``PAIRS_SIGNAL_REPLAY`` at every tick, ``live_source=None`` ``PAIRS_LIVE_SOURCE`` (default
    ``alpaca:<feed>-stream``) — both in the daemon's environment."""
    sectors = list(sectors)

    @dg.sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Every 5 minutes: a signal_job run per sector whose trading config is for the current "
        "session and whose pairs got new bars (market hours only, unless PAIRS_SIGNAL_REPLAY=1).",
    )
    def _signal_sensor(context: dg.SensorEvaluationContext, store: MarketDataStore) -> dg.SensorResult | dg.SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        now = clock() if clock is not None else pd.Timestamp.now(tz="UTC")
        result = evaluate_tick(
            store=store,
            instance=context.instance,
            cursor=cursor,
            now=now,
            replay=replay_from_env() if replay is None else replay,
            sectors=sectors,
            live_source=live_source,
        )
        for sector, reason in sorted(result.skipped.items()):
            context.log.info(f"signal sensor: {sector}: {reason}")
        if not result.run_requests:
            return dg.SkipReason(result.skip_reason())
        return dg.SensorResult(run_requests=result.run_requests, cursor=json.dumps(result.cursor, sort_keys=True))

    return _signal_sensor
