"""Range runs of the daily stage assets: a single-run backfill computes a range of sessions at once.

Every daily asset has ``BackfillPolicy.single_run()``: ``dagster asset materialize --partition-range``
and ``dg launch --partition-range`` run the whole range in one run, each asset one step; the UI's
*Materialize* (an asset backfill) one run per sector over the range. A step of a range run


* reads each sector's closes once (:func:`pairs_assets.assets.common.read_panel`, the walk-forward's
  panel) and gives every partition its windows sliced from it (:class:`WindowReader`): a window
  ends at the partition's own as-of (or formation) session, so no partition sees a later bar;
* verifies, before computing anything, that the store holds every close its partitions' windows read (:func:`require_coverage`:
  the stages depend on raw_bars of their own session only, so Dagster does not check this history);
* runs the stage's one-partition compute (the same function a one-partition run calls, on the same
  windows; the loop is :mod:`pairs_assets.assets.stage_factory`'s) once per *formation session* —
  the partitions of one trading period (``reselect_every``) share their formation stages — or a
  stage's range hook; ``cointegrated_pairs``' hook skips the Engle-Granger stage where the
  walk-forward's vectorised screen
  (:func:`pairs_assets.quant.pipeline.primitives.cointegration_screen`: rolling correlations of
  every pair, then Engle-Granger on every (pair, formation session of the range) that passes)
  shows no pair can pass;
* returns ``{partition key: object}``, which the IO manager writes as one file per partition, and
  records each partition's own window and input fingerprint on its materialization;
* records each check per partition (an ``AssetCheckEvaluation`` with the partition's key, written
  in batches through :func:`pairs_assets.instance.record_partition_checks`).

A one-partition run takes the one-partition path unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets.common import WindowReader, read_panel, require_coverage
from pairs_assets.home import PairsHome
from pairs_assets.instance import record_partition_checks
from pairs_assets.util import split_partition_key
from resources.market_data import MarketDataStore


@dataclass(frozen=True)
class SectorRange:
    """One sector's part of a range run: its as-of sessions, their formation sessions, its windows."""

    sector: str
    symbols: tuple[str, ...]
    sessions: tuple[pd.Timestamp, ...]
    formation: Mapping[pd.Timestamp, pd.Timestamp]
    windows: WindowReader
    #: the history the range reads from the store, verified complete (:func:`require_coverage`)
    coverage: str = ""

    def key(self, session: pd.Timestamp) -> str:
        return f"{session.date()}|{self.sector}"

    def cohorts(self) -> dict[pd.Timestamp, list[pd.Timestamp]]:
        """Formation session → the as-of sessions of the range that share it (in order)."""
        out: dict[pd.Timestamp, list[pd.Timestamp]] = defaultdict(list)
        for session in self.sessions:
            out[self.formation[session]].append(session)
        return dict(out)


def sessions_by_sector(context: dg.AssetExecutionContext) -> dict[str, list[pd.Timestamp]]:
    """The run's partitions as sector → sorted as-of sessions (each end of the range checked first)."""
    partitions.check_run_partitions(context)  # a holiday key would be moved to the next session
    out: dict[str, list[pd.Timestamp]] = defaultdict(list)
    for key in context.partition_keys:
        date, sector = split_partition_key(key)
        out[sector].append(pd.Timestamp(date))
    return {sector: sorted(dates) for sector, dates in sorted(out.items())}


def sector_ranges(
    context: dg.AssetExecutionContext,
    store: MarketDataStore,
    source: str,
    strategy,
    home: PairsHome,
    *,
    lookback: int,
    longest_window_ends_at_as_of: bool = False,
) -> list[SectorRange]:
    """Each sector's sessions with a panel of its closes: ``lookback`` sessions before the first
    formation session (the longest window the asset reads) through the last as-of session.

    The history each partition reads — ``lookback`` sessions ending at its formation session, or at
    its as-of session when ``longest_window_ends_at_as_of`` (trading_config's history), through its
    own session — is verified complete before anything is computed (:func:`require_coverage`)."""
    uni = home.universe()
    by_sector = sessions_by_sector(context)
    last = max(s for dates in by_sector.values() for s in dates)
    calendar = partitions.sessions_in_range(home.history_start, last)
    formation_of = partitions.formation_schedule(
        strategy.reselect_every, last, phase=strategy.formation_phase, since=calendar[0]
    )
    out = []
    for sector, dates in by_sector.items():
        symbols = uni.symbols(sector)
        formation = {d: formation_of(d) for d in dates}
        # a formation session before the history start (the schedule counts from a fixed epoch) sits at 0:
        # its partition's window read then fails naming the start of history
        first = int(calendar.searchsorted(min(formation.values()))) - lookback + 1
        panel_sessions = calendar[max(0, first) : calendar.get_loc(dates[-1]) + 1]
        panel = read_panel(store, source, sector, symbols, panel_sessions)
        # the history the windows read, verified before any partition is computed
        needs_from = {
            d: calendar[
                max(0, int(calendar.searchsorted(d if longest_window_ends_at_as_of else formation[d])) - lookback + 1)
            ]
            for d in dates
        }
        coverage = require_coverage(panel.closes, source, sector, needs_from)
        windows = WindowReader(store, source, panel, home=home)
        out.append(SectorRange(sector, tuple(symbols), tuple(dates), formation, windows, coverage))
    return out


def check_outputs(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
    """The (value-less) check outputs a range run must yield, as Dagster does for a check result."""
    for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))


def check_evaluations(
    context: dg.AssetExecutionContext,
    specs: Iterable[dg.AssetCheckSpec],
    results_by_key: Mapping[str, list[dg.AssetCheckResult]],
) -> Iterator[dg.AssetCheckEvaluation]:
    """Each partition's check results as evaluations recorded against that partition (``yield from``).

    Called after the materialization, through :func:`pairs_assets.instance.record_partition_checks`:
    one evaluation per check and partition, each targeting its partition's materialization by this
    run, written in batches as the run's own check events (yielded one by one they cost Dagster
    ~15 ms each, minutes over a year × every sector) — or, where the event log says
    ``range_checks: yielded``, yielded here (Dagster's public path). A failed blocking ERROR one
    then fails the step, as Dagster does for a yielded check result, so downstream steps of the
    range stop.
    """
    from pairs_assets.checks import ERROR

    selected = {k.name for k in context.selected_asset_check_keys}
    blocking = {spec.name: spec.blocking for spec in specs}
    asset_key = context.assets_def.key
    rows = []
    for key in sorted(results_by_key):
        partition = str(partitions.partition_key(*split_partition_key(key)))
        for result in results_by_key[key]:
            if result.check_name in selected:
                rows.append((partition, result, blocking[result.check_name]))
    recorded = record_partition_checks(context, asset_key, rows)
    yield from recorded.to_yield
    failed = [e for e in recorded.evaluations if e.blocking and not e.passed and e.severity == ERROR]
    if failed:
        names = sorted({e.check_name for e in failed})
        where = sorted({e.partition for e in failed})
        raise dg.Failure(
            f"{len(failed)} blocking {asset_key.to_user_string()} check evaluation(s) failed with ERROR severity "
            f"({', '.join(names)}) in {len(where)} partition(s): {', '.join(where[:10])}"
            + (" …" if len(where) > 10 else "")
        )


#: Per-partition metadata a range step records on each partition's own materialization.
PARTITION_FIELDS = ("window", "backtest_window", "history_window", "input_fingerprint")


def record_partition_metadata(context: dg.AssetExecutionContext, metadata_by_key: Mapping[str, Mapping]) -> None:
    """Each partition's own window and input fingerprint on its materialization in a range run
    (the rest of the range's metadata is its summary, :func:`range_metadata`)."""
    for key in sorted(metadata_by_key):
        own = {k: v for k, v in metadata_by_key[key].items() if k in PARTITION_FIELDS}
        if own:
            date, sector = split_partition_key(key)
            context.add_asset_metadata(own, partition_key=partitions.partition_key(date, sector))


def range_metadata(ranges: list[SectorRange], elapsed: float, **counts) -> dict:
    """Run-level metadata of a range step (recorded on each partition's materialization)."""
    sessions = sorted({s for r in ranges for s in r.sessions})
    return {
        "range_run": True,
        "partitions": sum(len(r.sessions) for r in ranges),
        "sectors": ", ".join(r.sector for r in ranges),
        "first_session": str(sessions[0].date()),
        "last_session": str(sessions[-1].date()),
        "formation_sessions": sum(len(r.cohorts()) for r in ranges),
        # the history read from the store (the stages depend on raw_bars of their own session only)
        "window_coverage": dg.MetadataValue.md("\n".join(f"- {r.sector}: {r.coverage}" for r in ranges)),
        **counts,
        "note": "a range run: each partition's output is its own file; this metadata sums the range",
        "elapsed_seconds": round(elapsed, 3),
    }
