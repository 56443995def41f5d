"""Helpers shared by the stage assets: partition keys, window reads from the store, metadata."""

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from pairs_assets import partitions
from pairs_assets.errors import MissingBarsError
from pairs_assets.home import PairsHome
from pairs_assets.quant.pipeline.primitives import SectorPanel, fingerprint_of  # noqa: F401  (one definition)
from pairs_assets.quant.pipeline.spec import reasons_text, table_text
from pairs_assets.universe import Universe
from resources.bars import fingerprint_bars, validate_bars
from resources.market_data import MarketDataStore

GROUP = "daily_pairs"


def history_window_metadata(sessions: int, detail: str) -> dict:
    """Definition metadata of a daily stage asset: the history it reads from the store — ``sessions``
    sessions up to its as-of session (``detail`` says which windows).

    The stages depend on ``raw_bars`` through the same-session partition only
    (:func:`pairs_assets.partitions.same_partition_mapping`): a window of hundreds of sessions
    declared as a partition mapping made Dagster walk every session of it for each partition of a
    backfill (minutes to launch one in the UI, and every downstream partition inside the windows
    targeted). The window is read from the market data store instead, its coverage verified before
    anything is computed (:func:`require_coverage` for a range, :class:`WindowReader` for one
    partition), and recorded on each materialization (``window``, ``input_fingerprint``; a range
    run: ``window_coverage``).
    """
    return {
        "pairs/history_sessions": sessions,
        "pairs/history": f"reads the {sessions} sessions up to its as-of session from the market data store ({detail}); "
        "depends on raw_bars of its own session only",
    }


def partition_parts(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(as-of date, sector) of a single-partition run; a key that is not a partition is refused."""
    key = context.partition_key
    # Dagster would move a holiday key to the next session; the run's partitions say which keys exist
    return partitions.check_partition_key(key, context.assets_def.partitions_def)


def session_of(timestamps: pd.Series) -> pd.Series:
    """The New York calendar date of each UTC timestamp (the session a bar belongs to)."""
    return timestamps.dt.tz_convert(partitions.EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()


@dataclass(frozen=True)
class Window:
    """Daily closes (sessions × symbols) of one window, read point-in-time from the store."""

    closes: pd.DataFrame
    fingerprint: str
    sessions: pd.DatetimeIndex
    n_bars: int

    @property
    def label(self) -> str:
        return f"{self.sessions[0].date()} → {self.sessions[-1].date()} ({len(self.sessions)} sessions)"


def session_closes(bars: pd.DataFrame, sessions: pd.DatetimeIndex, symbols: Sequence[str]) -> pd.DataFrame:
    """The last close of each (session, symbol) of bars that carry a ``session`` column."""
    closes = (bars.sort_values("timestamp").groupby(["session", "symbol"])["close"].last().unstack("symbol")).reindex(
        index=sessions, columns=sorted(symbols)
    )
    closes.index.name = "session"
    return closes


def read_panel(
    store: MarketDataStore,
    source: str,
    sector: str,
    symbols: Sequence[str],
    sessions: pd.DatetimeIndex,
    *,
    with_bars: bool = False,
):
    """A sector's closes over ``sessions`` in one read, with the row hashes that fingerprint any window.

    Returns a :class:`pairs_assets.quant.pipeline.primitives.SectorPanel`. A symbol with more than
    one bar in a session (intraday data) gets no row hashes (the panel's fingerprints are then
    off; the closes stay right) and, with ``with_bars``, the panel carries the bars themselves
    (:func:`pairs_assets.quant.walkforward.bars.bar_panel`: the walk-forward then decides on every bar).
    """
    from pairs_assets.quant.walkforward.bars import bar_panel, is_intraday

    bars = store.read_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]), source=source)
    bars = validate_bars(bars, context=f"walk-forward {sector} {sessions[0].date()}...{sessions[-1].date()}")
    if bars.empty:
        raise MissingBarsError(
            f"walk-forward {sector}: no bars from source {source!r} for {', '.join(symbols)} in "
            f"{sessions[0].date()} → {sessions[-1].date()}; load them first (pairs load-bars)"
        )
    bars = bars.assign(session=session_of(bars["timestamp"]))
    bars = bars[bars["session"].isin(sessions)]
    closes = session_closes(bars, sessions, symbols)
    ordered = bars.sort_values(["symbol", "timestamp", "source"], kind="stable").reset_index(drop=True)
    hashes = pd.util.hash_pandas_object(ordered[["symbol", "timestamp", "source", "close"]], index=False).to_numpy()
    row_hashes = {}
    for symbol, rows in ordered.groupby("symbol", sort=True).indices.items():
        one = np.zeros(len(sessions), dtype=np.uint64)
        positions = sessions.get_indexer(ordered["session"].to_numpy()[rows])
        if len(np.unique(positions)) != len(positions):
            row_hashes = None
            break
        one[positions] = hashes[rows]
        row_hashes[symbol] = one
    bar_frame = bar_panel(bars, symbols) if with_bars and is_intraday(bars) else None
    return SectorPanel(sector=sector, closes=closes, source=source, row_hashes=row_hashes, bars=bar_frame)


def read_window(
    store: MarketDataStore,
    source: str,
    symbols: Sequence[str],
    as_of: str,
    n_sessions: int,
    *,
    partition: str,
    history_start: str,
) -> Window:
    """The last close of each session for ``symbols`` over the ``n_sessions`` ending at ``as_of``.

    Reads nothing stamped after the as-of session's close. Raises ``InsufficientHistoryError`` when
    fewer than ``n_sessions`` lie between ``history_start`` and ``as_of`` (the start of history), and
    ``MissingBarsError`` naming the symbol and sessions that lack bars.
    """
    sessions = partitions.window_sessions(as_of, n_sessions, history_start=history_start)
    bars = store.read_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]), source=source)
    bars = validate_bars(bars, context=f"partition {partition}")
    if not bars.empty:
        bars = bars.assign(session=session_of(bars["timestamp"]))
        bars = bars[bars["session"].isin(sessions)]
    if bars.empty:
        raise MissingBarsError(
            f"partition {partition}: no bars from source {source!r} for {', '.join(symbols)} in "
            f"{sessions[0].date()} → {sessions[-1].date()}; materialize raw_bars for those sessions first"
        )
    closes = session_closes(bars, sessions, symbols)
    _require_complete(closes, source, len(sessions), partition)
    return Window(closes=closes, fingerprint=fingerprint_bars(bars), sessions=sessions, n_bars=len(bars))


def _require_complete(closes: pd.DataFrame, source: str, n_sessions: int, partition: str) -> None:
    """Raise ``MissingBarsError`` naming the symbol with the most window sessions without a close."""
    missing = closes.isna()
    if missing.to_numpy().any():
        worst = missing.sum().sort_values(ascending=False)
        symbol = str(worst.index[0])
        gaps = closes.index[missing[symbol]]
        raise MissingBarsError(
            f"partition {partition}: symbol {symbol} has no bars from source {source!r} for {int(worst.iloc[0])} "
            f"of the {n_sessions} window sessions (first {gaps[0].date()}, last {gaps[-1].date()}); "
            f"materialize raw_bars for {gaps[0].date()}...{gaps[-1].date()} first"
        )


def require_coverage(
    closes: pd.DataFrame, source: str, sector: str, needs_from: Mapping[pd.Timestamp, pd.Timestamp]
) -> str:
    """Verify, before anything is computed, that a range's history is in the store; return its label.

    ``closes`` are a sector's closes (sessions × every symbol of the sector) over the span the range
    reads; ``needs_from`` maps each as-of session of the range to the first session its windows read
    (the partition reads from there through its own session). The stages depend on ``raw_bars``
    through the same session only, so Dagster does not know about this history: this is where its
    absence is caught — for the whole range at once, so a gap late in the history fails the step
    before any partition is computed rather than after hours of them.

    Raises ``MissingBarsError`` naming the symbol with the most sessions without a close, its first
    and last such session, and the first partition (and how many) whose window needs them.
    """
    closes = closes.loc[min(needs_from.values()) : max(needs_from)]  # the panel may hold more than is read
    missing = closes.isna()
    span = f"{closes.index[0].date()} → {closes.index[-1].date()} ({len(closes)} sessions × {closes.shape[1]} symbols)"
    if not missing.to_numpy().any():
        return f"{span}: complete"
    worst = missing.sum().sort_values(ascending=False)
    symbol = str(worst.index[0])
    gaps = closes.index[missing[symbol]]
    needing = sorted(d for d, start in needs_from.items() if ((gaps >= start) & (gaps <= d)).any())
    first = needing[0] if needing else min(needs_from)
    raise MissingBarsError(
        f"partition {first.date()}|{sector}: symbol {symbol} has no bars from source {source!r} for {int(worst.iloc[0])} "
        f"of the {len(closes)} sessions the range's windows read ({span}; first gap {gaps[0].date()}, last "
        f"{gaps[-1].date()}), needed by {len(needing)} partition(s) of the range; "
        f"materialize raw_bars for {gaps[0].date()}...{gaps[-1].date()} first (pairs load-bars)"
    )


class WindowReader:
    """Reads a partition's windows (:class:`Window`): from the store, or sliced from a sector panel.

    One-partition runs read each window from the store (:func:`read_window`). A range run reads
    each sector's closes once (:func:`read_panel`) and slices every partition's windows from that
    panel — the same closes, the same fingerprints (the panel's row hashes are those
    :func:`resources.bars.fingerprint_bars` hashes), the same errors. A window ends at the session
    it is asked for, so a partition never sees a bar after its as-of session.

    It reads one home's history: ``home`` gives the universe and the history start (the first
    session a window may hold; the formation schedule does not depend on it: :func:`pairs_assets.partitions.formation_schedule`).
    """

    def __init__(self, store: MarketDataStore, source: str, panel=None, *, home: PairsHome):
        self.store = store
        self.source = source
        self.panel = panel
        self.home = home
        self.history_start = home.history_start
        self._universe: Universe | None = None

    @property
    def universe(self) -> Universe:
        """The home's universe (read once per reader)."""
        if self._universe is None:
            self._universe = self.home.universe()
        return self._universe

    def formation_session(self, as_of, every: int, phase: int = 0) -> pd.Timestamp:
        """:func:`pairs_assets.partitions.formation_session`: the fixed exchange-calendar schedule (the
        same whatever this history's start)."""
        return partitions.formation_session(as_of, every, phase=phase)

    def next_session(self, as_of) -> pd.Timestamp:
        """The exchange session after ``as_of`` (a trading config's effective session)."""
        return partitions.next_session(as_of)

    def sessions_between(self, first, last) -> pd.DatetimeIndex:
        """The exchange sessions from ``first`` through ``last``."""
        return partitions.sessions_in_range(first, last)

    def read(self, symbols: Sequence[str], as_of, n_sessions: int, *, partition: str) -> Window:
        if self.panel is None or self.panel.row_hashes is None:
            return read_window(
                self.store,
                self.source,
                symbols,
                str(pd.Timestamp(as_of).date()),
                n_sessions,
                partition=partition,
                history_start=self.history_start,
            )
        end = self.panel.position(pd.Timestamp(as_of))
        if end - n_sessions + 1 < 0:  # before the panel: the store read says why (start of history)
            return read_window(
                self.store,
                self.source,
                symbols,
                str(pd.Timestamp(as_of).date()),
                n_sessions,
                partition=partition,
                history_start=self.history_start,
            )
        symbols = sorted(symbols)
        closes = self.panel.closes.iloc[end - n_sessions + 1 : end + 1][symbols]
        _require_complete(closes, self.source, n_sessions, partition)
        return Window(
            closes=closes,
            fingerprint=self.panel.fingerprint(symbols, end, n_sessions),
            sessions=closes.index,
            n_bars=int(closes.size),
        )


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, n: int = 10) -> dg.MetadataValue:
    """The first ``n`` rows as a Markdown table (floats to 4 significant digits)."""
    return dg.MetadataValue.md(table_text(frame, columns, n))


def reasons_table(reasons: dict[str, str]) -> dg.MetadataValue:
    return dg.MetadataValue.md(reasons_text(reasons))


@contextmanager
def stopwatch() -> Iterator[dict]:
    box: dict = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = round(time.perf_counter() - start, 3)
