"""What the recycler replays: its settings, and the stored bars grouped into steps.

A *step* is every bar that shares one stored timestamp; the replay clock
(:mod:`pairs_assets.live.recycler.protocol`) emits one step per tick. Bars the stream ingestion
wrote while reading a recycler (sources starting with ``recycler``) are never replayed again unless
asked for, so a recycler never replays its own echo.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.market.symbology import MAX_SYMBOL_LENGTH, is_symbol
from resources.market_data import MarketDataStore

MODES = ("loop", "date_range", "single_pass")
#: Sources the stream ingestion writes when it reads from a recycler; never replayed again by default.
RECYCLED_SOURCE_PREFIX = "recycler"
#: Largest page of the historical endpoint (Alpaca's own limit).
MAX_PAGE = 10_000
#: Value fields of a bar, in the order a step stores them.
VALUE_FIELDS = ("open", "high", "low", "close", "volume", "trade_count", "vwap")


class RecyclerError(PairsError, ValueError):
    """The recycler cannot start: empty store, unknown symbol, bad setting (named in the message)."""


@dataclasses.dataclass(frozen=True)
class RecyclerSettings:
    """How the recycler replays. Every field has a safe default; see :mod:`pairs_assets.live.recycler`."""

    host: str = "127.0.0.1"
    port: int = 8765
    mode: str = "loop"
    loops: int = -1
    start: str | None = None
    end: str | None = None
    speed: float = 1.0
    bar_interval_s: float = 60.0
    restamp: bool = True
    symbols: tuple[str, ...] = ()
    proxies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_proxy: str | None = None
    source: str | None = None
    tail: int | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    start_on_subscribe: bool = True
    auth_timeout_s: float = 10.0
    #: bar frames queued for one client before it is a slow client (407, disconnected)
    max_pending_frames: int = 1_000
    #: seconds a slow client gets to take its 407 before the connection is aborted
    slow_client_grace_s: float = 5.0
    max_page_size: int = MAX_PAGE
    #: emitted bars kept for the historical endpoint, over all symbols together (the oldest go first);
    #: ~75 bytes each (measured, loop mode: 200,000 bars of 20 symbols held 14.9 MB): the default 1,000,000
    #: holds ~75 MB whatever the number of symbols
    max_emitted_bars: int = 1_000_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RecyclerError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "loop" and (self.loops == 0 or self.loops < -1):
            raise RecyclerError(f"loops must be -1 (forever) or a positive count, got {self.loops}")
        if self.mode == "date_range" and not (self.start and self.end):
            raise RecyclerError("mode date_range needs both start and end (e.g. 2022-12-01 and 2022-12-28)")
        if not (math.isfinite(self.speed) or self.speed == math.inf) or self.speed <= 0:
            raise RecyclerError(
                f"speed must be positive (1 = one bar step per {self.bar_interval_s:g} s), got {self.speed}"
            )
        if self.bar_interval_s < 0:
            raise RecyclerError(f"bar_interval_s must be >= 0, got {self.bar_interval_s}")
        if self.tail is not None and self.tail < 1:
            raise RecyclerError(f"tail must be a positive number of bar steps, got {self.tail}")
        if self.max_pending_frames < 1:
            raise RecyclerError(f"max_pending_frames must be at least 1, got {self.max_pending_frames}")
        if self.slow_client_grace_s <= 0:
            raise RecyclerError(f"slow_client_grace_s must be positive, got {self.slow_client_grace_s}")
        if self.max_emitted_bars < 1:
            raise RecyclerError(f"max_emitted_bars must be at least 1, got {self.max_emitted_bars}")
        if not 1 <= self.max_page_size <= MAX_PAGE:
            raise RecyclerError(f"max_page_size must be between 1 and {MAX_PAGE}, got {self.max_page_size}")
        if bool(self.api_key) != bool(self.secret_key):
            raise RecyclerError("configure both the recycler key and secret, or neither")
        for symbol in (
            *self.symbols,
            *self.proxies.keys(),
            *self.proxies.values(),
            *([self.default_proxy] if self.default_proxy else []),
        ):
            if not is_symbol(symbol):
                raise RecyclerError(
                    f"invalid symbol {symbol!r} (a US-equity ticker: upper-case letters, digits, '.' or '-', "
                    f"up to {MAX_SYMBOL_LENGTH})"
                )

    @property
    def step_seconds(self) -> float:
        """Seconds between two emitted steps (0: as fast as the clients read)."""
        return 0.0 if self.speed == math.inf else self.bar_interval_s / self.speed

    @property
    def passes(self) -> int:
        """Number of passes over the bars (-1 forever)."""
        return self.loops if self.mode == "loop" else 1

    @property
    def auth_required(self) -> bool:
        return bool(self.api_key)


@dataclasses.dataclass
class ReplayData:
    """The bars to replay, grouped into steps (one per distinct stored timestamp)."""

    step_times: list[pd.Timestamp]
    steps: list[dict[str, tuple]]  # data symbol -> values in VALUE_FIELDS order
    sources: dict[str, str]  # data symbol -> source replayed
    symbols: tuple[str, ...]  # data symbols loaded

    @property
    def n_bars(self) -> int:
        return sum(len(step) for step in self.steps)


def choose_sources(counts: pd.DataFrame, symbols: list[str] | None, source: str | None) -> dict[str, str]:
    """Per symbol, the stored source to replay: ``source`` if given, else the one with most bars.

    Sources starting with ``recycler`` (bars the stream ingestion wrote while reading a recycler)
    are skipped unless asked for explicitly, so a recycler never replays its own echo.
    """
    if counts.empty:
        return {}
    if source is not None:
        chosen = counts[counts["source"] == source]
    else:
        chosen = counts[~counts["source"].astype(str).str.startswith(RECYCLED_SOURCE_PREFIX)]
    if symbols is not None:
        chosen = chosen[chosen["symbol"].isin(symbols)]
    chosen = chosen.sort_values(["symbol", "bars", "source"], ascending=[True, False, True], kind="stable")
    return dict(chosen.drop_duplicates("symbol")[["symbol", "source"]].itertuples(index=False, name=None))


def _bound(value: str | None, *, end: bool) -> pd.Timestamp | None:
    """A ``start``/``end`` setting as UTC: dates are New York calendar days (end inclusive)."""
    if not value:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise RecyclerError(f"{'end' if end else 'start'} {value!r} is not a date or timestamp") from exc
    if ts.tzinfo is None:
        date_only = ts == ts.normalize() and len(str(value)) <= 10
        ts = ts.tz_localize("America/New_York")
        if end and date_only:
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.tz_convert("UTC")


def load_replay_data(store: MarketDataStore, settings: RecyclerSettings) -> ReplayData:
    """Read the bars to replay from the store; raise ``RecyclerError`` naming what is missing."""
    counts = store.bar_counts()
    if counts.empty:
        raise RecyclerError(
            f"the market data store {store.display_url} holds no bars; load some first "
            "(materialize raw_bars, e.g. `pairs demo`, or run `pairs stream` against Alpaca)"
        )
    sources = choose_sources(counts, None, settings.source)
    if not sources:
        raise RecyclerError(
            f"the market data store {store.display_url} has no bars of source {settings.source!r} "
            f"(sources: {', '.join(sorted(counts['source'].astype(str).unique()))})"
        )
    wanted = list(settings.symbols) or sorted(sources)
    missing = [s for s in wanted if s not in sources and not (settings.proxies.get(s) or settings.default_proxy)]
    if missing:
        raise RecyclerError(
            f"unknown symbol(s) {', '.join(missing)}: no stored bars in {store.display_url}"
            + (f" of source {settings.source!r}" if settings.source else "")
            + " and no proxy configured (add one with `pairs symbols proxy SYMBOL AAPL` or --proxy SYMBOL=AAPL)"
        )
    data_symbols = sorted({s for s in wanted if s in sources})
    for symbol in wanted:
        if symbol not in sources:
            stand_in = settings.proxies.get(symbol) or settings.default_proxy
            if stand_in not in sources:
                raise RecyclerError(f"proxy {stand_in} of symbol {symbol} has no stored bars either")
            data_symbols.append(stand_in)
    if settings.default_proxy and settings.default_proxy in sources:
        data_symbols.append(settings.default_proxy)
    data_symbols = sorted(set(data_symbols))
    start = _bound(settings.start, end=False) or pd.Timestamp("1900-01-01", tz="UTC")
    end = _bound(settings.end, end=True) or pd.Timestamp("2200-01-01", tz="UTC")
    if end < start:
        raise RecyclerError(f"end {settings.end} is before start {settings.start}")
    frames = []
    by_source: dict[str, list[str]] = collections.defaultdict(list)
    for symbol in data_symbols:
        by_source[sources[symbol]].append(symbol)
    for source, symbols in sorted(by_source.items()):
        frames.append(store.read_bars(symbols, start, end, source=source))
    bars = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if bars.empty:
        raise RecyclerError(
            f"no bars of {', '.join(data_symbols)} between {start.isoformat()} and {end.isoformat()} "
            f"in {store.display_url}"
        )
    bars = bars.sort_values(["timestamp", "symbol"], kind="stable")
    times = pd.DatetimeIndex(bars["timestamp"])
    unique_times = times.unique()
    if settings.tail:
        unique_times = unique_times[-settings.tail :]
        keep = times >= unique_times[0]
        bars, times = bars[keep], times[keep]
    values = bars[list(VALUE_FIELDS)].to_numpy(dtype="float64")
    symbols_col = bars["symbol"].to_numpy()
    step_times: list[pd.Timestamp] = []
    steps: list[dict[str, tuple]] = []
    codes = times.asi8
    boundaries = np.flatnonzero(np.diff(codes)) + 1
    for chunk in np.split(np.arange(len(codes)), boundaries):
        if len(chunk) == 0:
            continue
        step_times.append(pd.Timestamp(codes[chunk[0]], tz="UTC"))
        steps.append({symbols_col[i]: tuple(values[i]) for i in chunk})
    return ReplayData(
        step_times=step_times, steps=steps, sources={s: sources[s] for s in data_symbols}, symbols=tuple(data_symbols)
    )
