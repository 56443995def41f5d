"""raw_bars: the sessions' bars of a sector's symbols, upserted into the market data store.

Single-run backfill policy: a range of sessions (and sectors) is loaded in one pass — one read of
the source, one validation, one transaction — e.g.
``dagster asset materialize -m pairs_assets.definitions --select raw_bars --partition-range
"2017-01-03|consumer...2022-12-28|technology"``.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets.common import GROUP, markdown_table, session_of, stopwatch
from pairs_assets.assets.ranges import sessions_by_sector
from pairs_assets.errors import MissingBarsError
from pairs_assets.home import PairsHome
from pairs_assets.instance import record_partition_checks
from pairs_assets.settings import StrategySettings
from pairs_assets.universe import Universe
from resources.bar_sources import BarSource
from resources.bars import fingerprint_bars, validate_bars
from resources.market_data import MarketDataStore


def load_sector_bars(
    bar_source: BarSource, sector: str, symbols: tuple[str, ...], sessions: list[pd.Timestamp]
) -> pd.DataFrame:
    """Bars of ``symbols`` for exactly ``sessions`` from the source, checked complete and valid."""
    label = (
        f"{sessions[0].date()}|{sector}"
        if len(sessions) == 1
        else f"{sessions[0].date()}...{sessions[-1].date()}|{sector}"
    )
    bars = bar_source.load_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    if not bars.empty:
        bars = bars.assign(session=session_of(bars["timestamp"]))
        bars = bars[bars["session"].isin(sessions)]
        # After-hours bars belong to no session: the as-of rule cuts at the close.
        close_of = {s: partitions.session_close_utc(s) for s in sessions}
        bars = bars[bars["timestamp"] <= bars["session"].map(close_of)]
    if bars.empty:
        raise MissingBarsError(
            f"partition {label}: source {bar_source.source_name!r} has no bars for {', '.join(symbols)} "
            f"in {sessions[0].date()} → {sessions[-1].date()}"
        )
    absent = sorted(set(symbols) - set(bars["symbol"]))
    if absent:
        raise MissingBarsError(
            f"partition {label}: universe symbol(s) {', '.join(absent)} (sector {sector}) are absent from "
            f"source {bar_source.source_name!r} for {sessions[0].date()} → {sessions[-1].date()}"
        )
    have = set(zip(bars["symbol"], bars["session"]))
    for session in sessions:
        lacking = [s for s in symbols if (s, session) not in have]
        if len(lacking) == len(symbols):
            raise MissingBarsError(
                f"partition {session.date()}|{sector}: session {session.date()} has no bars in source "
                f"{bar_source.source_name!r} for any of {', '.join(symbols)}"
            )
        if lacking:
            raise MissingBarsError(
                f"partition {session.date()}|{sector}: symbol(s) {', '.join(lacking)} have no bar for session "
                f"{session.date()} in source {bar_source.source_name!r}"
            )
    return validate_bars(bars.drop(columns="session"), context=f"partition {label}")


def validate_range(
    bar_source: BarSource, sessions_by_sector: dict[str, list[pd.Timestamp]], uni: Universe
) -> dict[str, pd.DataFrame]:
    """The validated bars of every sector's sessions, read before anything is written.

    Raises ``MissingBarsError`` naming the partition, session and symbol of the first gap (checked
    for the whole range, so a range with one missing session at its end loads nothing and starts no
    run when called before it: ``pairs load-bars`` and ``pairs demo`` do, so the UI never marks the
    range's other sessions failed for a run that could not have succeeded).
    """
    return {
        sector: load_sector_bars(bar_source, sector, uni.symbols(sector), sessions)
        for sector, sessions in sorted(sessions_by_sector.items())
    }


def raw_bars_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset (and its checks) on ``daily``'s partitions."""
    return dg.asset(
        name="raw_bars",
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=checks.check_specs(checks.RAW_BARS_CHECKS, daily),
        group_name=GROUP,
        kinds={"sqlalchemy"},
        description="The session's bars of the sector's symbols, upserted into the market data store "
        "(keyed by symbol, timestamp, source). A range of sessions loads in one pass.",
    )(raw_bars)


def raw_bars(
    context: dg.AssetExecutionContext,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
) -> Iterator[dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation]:
    with stopwatch() as timer:
        by_sector = sessions_by_sector(context)
        uni = home.universe()
        # every sector and session validated before the one write: a gap anywhere writes nothing
        bars = pd.concat(list(validate_range(bar_source, by_sector, uni).values()), ignore_index=True)
        label = ", ".join(by_sector)
        written = store.upsert_bars(bars, context=f"raw_bars {label}")  # one transaction
        findings = {}
        for sector, sessions in by_sector.items():
            symbols = uni.symbols(sector)
            stored = store.read_bars(
                symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]), source=bar_source.source_name
            )
            stored = stored.assign(session=session_of(stored["timestamp"]))
            # the jump check scores each bar against earlier ones: read jump_window sessions before too
            earlier = partitions.sessions_in_range(home.history_start, sessions[0])
            history = store.read_bars(
                symbols,
                *partitions.sessions_span_utc(earlier[-(strategy.jump_window + 1) :][0], sessions[-1]),
                source=bar_source.source_name,
            )
            stored = stored[stored["session"].isin(sessions)]
            findings[sector] = checks.raw_bars_findings(stored, history, symbols, sessions, strategy)
    sessions_all = sorted({s for v in by_sector.values() for s in v})
    one_partition = context.has_partition_key
    yield dg.MaterializeResult(
        metadata={
            "source": bar_source.describe(),
            "store": store.display_url,
            "sessions": len(sessions_all),
            "first_session": str(sessions_all[0].date()),
            "last_session": str(sessions_all[-1].date()),
            "sectors": label,
            "symbols": len(set(bars["symbol"])),
            "bars_written": written,
            "null_fields": ", ".join(
                c for c in ["open", "high", "low", "volume", "trade_count", "vwap"] if bars[c].isna().all()
            )
            or "none",
            "input_fingerprint": fingerprint_bars(bars),
            "last_bars": markdown_table(
                bars.sort_values(["timestamp", "symbol"]).tail(10), ["symbol", "timestamp", "close", "volume", "source"]
            ),
            "elapsed_seconds": timer["seconds"],
        },
        # one partition: its results (Dagster records the run's partition on each)
        check_results=next(iter(findings.values())).results() if one_partition else None,
    )
    if not one_partition:
        for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            # the check's (value-less) output, as Dagster yields for an AssetCheckResult
            yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
        # recorded in batches as the run's own check events (one per check and partition), not
        # yielded one by one: 46,800 yielded evaluations cost Dagster ~15 minutes
        recorded = record_partition_checks(
            context,
            dg.AssetKey("raw_bars"),
            _partition_check_results(findings, by_sector, {k.name for k in context.selected_asset_check_keys}),
        )
        yield from recorded.to_yield  # Dagster's public path, where the event log says range_checks: yielded
        failed = [e for e in recorded.evaluations if e.blocking and not e.passed and e.severity == checks.ERROR]
        if failed:
            # what Dagster does after a step yields a failed blocking ERROR evaluation
            names = sorted({e.check_name for e in failed})
            partitions_failed = sorted({e.partition for e in failed})
            raise dg.Failure(
                f"{len(failed)} blocking raw_bars check evaluation(s) failed with ERROR severity "
                f"({', '.join(names)}) in {len(partitions_failed)} partition(s): {', '.join(partitions_failed[:10])}"
                + (" …" if len(partitions_failed) > 10 else "")
            )


def _partition_check_results(
    findings: dict[str, checks.RawBarsFindings],
    by_sector: dict[str, list[pd.Timestamp]],
    selected: set[str],
) -> Iterator[tuple[str, dg.AssetCheckResult, bool]]:
    """A range run's check results, one per check and partition, each on that partition's bars:
    ``(partition key, result, blocking)`` for :func:`pairs_assets.instance.record_partition_checks`,
    which records each against its partition's materialization; the caller fails the step when a
    blocking one failed.
    """
    blocking = {spec.name: spec.blocking for spec in checks.RAW_BARS_CHECKS}
    for sector, sessions in by_sector.items():
        for session in sessions:
            key = partitions.partition_key(str(session.date()), sector)
            for result in findings[sector].results([session]):
                if result.check_name not in selected:
                    continue
                yield str(key), result, blocking[result.check_name]
