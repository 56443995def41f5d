"""``pairs paper-replay``: the live path driven over history, beside the walk-forward over the same bars.

What runs, in order, in a fresh replay home (``<PAIRS_HOME>/paper_replay/<name>/``: its own store,
paper book and trading configs — the user's store and book are never touched):

1. **Bars.** The bar source's bars (the embedded data by default) for the range and the longest
   window before it go into an *archive* store: the market the recycler replays. The replay's
   *live* store starts with the history before the range only.
2. **Trading configs.** Each as-of session's trading config is built by the walk-forward's
   :func:`~pairs_assets.quant.walkforward.replay.build_configs` on the archive's panel — the
   function whose configs equal the daily graph's ``trading_config`` field for field, input
   fingerprint included (``test_walk_forward_configs_equal_the_daily_graph``) — and written as the
   daily graph writes it: a JSON file per partition and a row in the live store's
   ``trading_configs``. Materializing the daily graph per session would give the same documents at
   hundreds of times the cost (GARCH fits, GRU training per partition).
3. **Stream.** A recycler (``--keep-timestamps``: the bars keep their stored times, one pass over
   the range at full speed) serves the archive's bars of the range as Alpaca's stream, and the real
   ingestion (:class:`pairs_assets.live.stream.StreamIngestor`, ``pairs stream``'s code) writes them
   into the live store as source ``recycler:iex``. The stream runs ahead of the signal runs; each
   signal run reads only bars stamped at or before its session's close (the signal job's point-in-time
   rule), so a run sees what it would have seen live.
4. **Signals and orders, session by session.** Before session t, the daily load of its as-of
   session D (the previous session) puts D's bars from the bar source into the live store — what
   ``raw_bars`` does at 6 AM — so the signal job's history is the daily graph's and the session's
   own bars are the stream's. Then ``signal_job``'s asset (``trading_signals``, the one the signal
   sensor launches) runs in-process through Dagster (``signal_job``) for partition ``D|sector`` with
   ``bar_cutoff`` = the close of t, for every sector whose config lists a pair or whose pair states
   hold a position. Its orders go through the dry-run broker into the replay store's paper book
   (``orders`` / ``positions``), its states into ``pair_states``.
5. **The walk-forward** (:func:`pairs_assets.quant.walkforward.engine.run_walk_forward`, the engine
   of ``pairs walk-forward``) over the same range, panel and strategy, at cost 0 and lag 0: the
   dry-run broker fills an order at its signal bar's close, which is the walk-forward's lag 0.

**Intraday bars.** When the bar source has several bars a session (a user's file, e.g. hourly or
5-minute), the signal job runs once per bar time of the session (``bar_cutoff`` = that bar), as the
sensor launches a run per new bar — one run nets the orders of all the bars it applies, so a run per
bar is what trades each bar — and the walk-forward decides on the same bars: the panels carry
the bars (:func:`~pairs_assets.assets.common.read_panel` ``with_bars``) and ``run_walk_forward``
trades them as ``pairs walk-forward`` does on an intraday source
(:mod:`pairs_assets.quant.walkforward.bars`: each symbol at its latest price up to the bar, the
config effective in the bar's session, ``max_holding`` in sessions), executed at lag 0 on the bar
index. Entries and exits are then
stamped with their bar (New York time).

The parity table (:func:`parity_table`) sets each pair's round trips side by side — entry (session,
side, shares per leg), exit (session, reason) and P&L — ours from the paper book's fills (whole
shares; an open position marked at the last close), the walk-forward's from its executed trades
(fractional shares ``w·equity/P``, P&L × equity). Shares are the same when
``round(w·equity/P)`` agrees; P&L may differ by the share rounding only, at most
``Σ_legs ½·|P_exit − P_entry|`` per trade (the tolerance column).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets.common import read_panel, session_of
from pairs_assets.assets.trading_signals import ASSET_NAME as SIGNAL_ASSET
from pairs_assets.assets.trading_signals import read_pair_states, trading_signals_asset
from pairs_assets.assets.walk_forward import panel_sessions
from pairs_assets.errors import PairsError
from pairs_assets.quant import rule
from pairs_assets.quant.walkforward.engine import WalkForwardSettings, run_walk_forward
from pairs_assets.quant.walkforward.replay import build_configs
from pairs_assets.settings import StrategySettings
from pairs_assets.universe import Universe
from pairs_assets.util import atomic_write_bytes
from resources.bar_sources import BarSource, EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, orders_table, trading_signals_table
from resources.model_registry import ModelRegistry

__all__ = ["PaperReplayError", "ReplayResult", "paper_replay", "parity_table", "print_parity"]

#: the stream's source label when it reads a recycler (``StreamSettings.source_label``)
STREAM_FEED = "iex"
PARITY_COLUMNS = [
    "sector",
    "pair_id",
    "trade",
    "entry",
    "side",
    "shares",
    "exit",
    "reason",
    "wf_entry",
    "wf_side",
    "wf_shares",
    "wf_exit",
    "wf_reason",
    "pnl",
    "wf_pnl",
    "d_pnl",
    "tolerance",
    "match",
]


class PaperReplayError(PairsError, ValueError):
    """A replay that cannot run (a range outside the bars, an unknown sector): one line naming which."""


@dataclasses.dataclass
class ReplayResult:
    """What a paper replay did and found.

    Attributes
    ----------
    parity : pandas.DataFrame
        :data:`PARITY_COLUMNS`, one row per round trip of either side.
    verdict : str
        One line: ``PARITY`` or ``DIVERGED`` and why.
    live_trades, wf_trades : pandas.DataFrame
        The two sides' round trips (see :func:`live_round_trips`, :func:`wf_round_trips`).
    home : Path
        The replay home (its store holds the paper book).
    counts : dict
        Sessions, signal runs, bars streamed, orders.
    seconds : dict
        Wall time per phase.
    """

    parity: pd.DataFrame
    verdict: str
    live_trades: pd.DataFrame
    wf_trades: pd.DataFrame
    home: Path
    counts: dict
    seconds: dict


# --- checks before anything is created -----------------------------------------------------------


def check_range(
    start: str,
    end: str,
    sectors: Sequence[str],
    universe: Universe,
    bar_source: BarSource,
    strategy: StrategySettings,
    history_start: str,
) -> tuple[pd.DatetimeIndex, WalkForwardSettings]:
    """The replay's sessions and walk-forward settings; ``PaperReplayError`` (one line) when the range
    lies outside the bars, holds no session, or a sector is unknown."""
    unknown = sorted(set(sectors) - set(universe.sector_names))
    if unknown:
        raise PaperReplayError(f"unknown sector(s) {', '.join(unknown)} (known: {', '.join(universe.sector_names)})")
    try:
        first_day, last_day = pd.Timestamp(start), pd.Timestamp(end)
    except (TypeError, ValueError):
        raise PaperReplayError(f"--start {start!r} / --end {end!r}: not dates (YYYY-MM-DD)") from None
    if first_day > last_day:
        raise PaperReplayError(f"replay range {start} → {end}: the start is after the end")
    last_bar = bar_source.last_session()
    if last_bar is not None and last_day > pd.Timestamp(last_bar):
        raise PaperReplayError(
            f"replay range {start} → {end} is outside the bars: source {bar_source.source_name!r} ends on "
            f"{pd.Timestamp(last_bar).date()}; end the range on or before it"
        )
    sessions = partitions.sessions_in_range(first_day, last_day)
    if len(sessions) == 0:
        raise PaperReplayError(f"replay range {start} → {end} holds no NYSE session")
    settings = WalkForwardSettings(
        start=str(sessions[0].date()),
        end=str(sessions[-1].date()),
        sectors=list(sectors),
        costs=[0.0],
        lag=0,
        workers=1,
        bootstrap_resamples=10,
        min_trades=0,
    )
    available = partitions.sessions_in_range(history_start, sessions[-1])
    before = int((available < sessions[0]).sum())
    from pairs_assets.quant.walkforward.engine import required_history

    needed = required_history(strategy, settings) + 1
    if before < needed:
        earliest = partitions.sessions_in_range(history_start, last_bar or sessions[-1])
        hint = f"; start on or after {earliest[needed].date()}" if len(earliest) > needed else ""
        raise PaperReplayError(
            f"replay range {start} → {end} is outside the bars: its windows need {needed} sessions of bars before "
            f"{sessions[0].date()} and the bars (from {history_start}) hold {before}{hint}"
        )
    return sessions, settings


# --- the replay ----------------------------------------------------------------------------------


def paper_replay(
    start: str,
    end: str,
    sectors: Sequence[str],
    *,
    universe: Universe,
    home: Path,
    history_start: str,
    strategy: StrategySettings | None = None,
    bar_source: BarSource | None = None,
    equity: float = 100_000.0,
    on_drop: str = rule.DEFAULT_ON_DROP,
    max_holding: int = rule.DEFAULT_MAX_HOLDING,
    echo: Callable[[str], None] = print,
) -> ReplayResult:
    """Drive the live path over ``start``..``end`` and compare it with the walk-forward (module docstring).

    Parameters
    ----------
    start, end : str
        First and last session traded (YYYY-MM-DD).
    sectors : sequence of str
        Sectors of ``universe`` (empty: all).
    universe : Universe
    home : Path
        The replay home; replaced if it exists (created only after the range is checked).
    history_start : str
        The first session of the history (``PAIRS_HISTORY_START``).
    strategy : StrategySettings, optional
        Default: the defaults.
    bar_source : BarSource, optional
        Default: the embedded data.
    equity : float, default 100,000
        The dry-run broker's equity (and the walk-forward's P&L scale).
    on_drop, max_holding
        As for the signal job and the walk-forward (the same values go to both).
    echo : callable
        Progress lines.

    Returns
    -------
    ReplayResult

    Raises
    ------
    PaperReplayError
        The range is outside the bars, holds no session, or a sector is unknown (nothing created).
    """
    strategy = strategy or StrategySettings()
    bar_source = bar_source or EmbeddedBarSource()
    sectors = sorted(set(sectors) or universe.sector_names)
    sessions, wf_settings = check_range(start, end, sectors, universe, bar_source, strategy, history_start)
    wf_settings = wf_settings.model_copy(update={"on_drop": on_drop, "max_holding": max_holding})
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    archive = MarketDataStore(database_url=f"sqlite:///{home / 'archive.sqlite'}")
    live = MarketDataStore(database_url=f"sqlite:///{home / 'paper.sqlite'}")
    source = bar_source.source_name
    panel_days = panel_sessions(wf_settings, strategy, history_start)
    symbols_of = {sector: tuple(universe.symbols(sector)) for sector in sectors}
    symbols = sorted({s for sector in sectors for s in symbols_of[sector]})
    bars = bar_source.load_bars(symbols, *partitions.sessions_span_utc(panel_days[0], panel_days[-1]))
    archive.upsert_bars(bars, context="paper-replay archive")
    history_end = partitions.session_close_utc(partitions.previous_session(sessions[0]))
    live.upsert_bars(bars[bars["timestamp"] <= history_end], context="paper-replay history")
    panels = {
        sector: read_panel(archive, source, sector, symbols_of[sector], panel_days, with_bars=True)
        for sector in sectors
    }
    seconds["load"] = round(time.perf_counter() - t0, 2)

    # 2. the trading configs, as the daily graph writes them
    t0 = time.perf_counter()
    # the daily graph's formation calendar (fixed epoch, the strategy's phase), whatever the history start
    schedule = partitions.formation_schedule(
        strategy.reselect_every, sessions[-1], phase=strategy.formation_phase, since=history_start
    )
    configs: dict[str, dict[pd.Timestamp, object]] = {}
    for sector in sectors:
        index = panels[sector].closes.index
        first = index.get_loc(sessions[0])
        as_of = index[first - 1 : index.get_loc(sessions[-1])]
        effective = list(index[first : first + len(as_of)])
        configs[sector] = build_configs(
            panels[sector], as_of, effective, symbols_of[sector], strategy, formation_of=schedule
        )
        for day, config in configs[sector].items():
            path = home / "outputs" / "trading_config" / str(day.date()) / f"{sector}.json"
            atomic_write_bytes(path, config.to_json_bytes())
            live.write_trading_config(config.document(), str(path))
    seconds["configs"] = round(time.perf_counter() - t0, 2)

    # 3. the stream: recycler (stored timestamps) → pairs stream's ingestion → the live store
    t0 = time.perf_counter()
    streamed = stream_range(archive, live, symbols, sessions[0], sessions[-1])
    seconds["stream"] = round(time.perf_counter() - t0, 2)
    echo(
        f"paper-replay: streamed {streamed} bar(s) of {len(symbols)} symbol(s) into {live.display_url} (source recycler:{STREAM_FEED})"
    )

    # 4. the signal job, session by session
    t0 = time.perf_counter()
    runner = SignalRunner(
        live, strategy, bar_source, home, history_start, sectors, sessions[-1], equity, on_drop, max_holding
    )
    runs = 0
    bar_day = session_of(bars["timestamp"])
    intraday = bool(bars.assign(day=bar_day).duplicated(["symbol", "day"]).any())
    for position, session in enumerate(sessions):
        as_of = partitions.previous_session(session)
        if position > 0:  # the 6 AM daily load of the as-of session (the first one's is in the history)
            live.upsert_bars(bars[bar_day == as_of], context="paper-replay daily load")
        for sector in sectors:
            config = configs[sector][as_of]
            if not config.pairs and not any(st.side for st in read_pair_states(live, sector).values()):
                continue
            if intraday:  # a run per bar, as the sensor launches one per new bar (a run nets its bars' orders)
                today = bars[(bar_day == session) & bars["symbol"].isin(symbols_of[sector])]
                cutoffs = sorted(pd.DatetimeIndex(today["timestamp"]).unique())
            else:
                cutoffs = [partitions.session_close_utc(session)]
            for cutoff in cutoffs:
                runner.run(f"{as_of.date()}|{sector}", pd.Timestamp(cutoff))
                runs += 1
        if (position + 1) % 20 == 0:
            echo(f"paper-replay: {position + 1}/{len(sessions)} sessions, {runs} signal run(s)")
    seconds["signals"] = round(time.perf_counter() - t0, 2)

    # 5. the walk-forward over the same range and bars
    t0 = time.perf_counter()
    result = run_walk_forward(panels, symbols_of, partitions.next_session, strategy, wf_settings, formation_of=schedule)
    wf = result.trades[result.trades["strategy"] == "default"]
    # the prices both sides are marked at: the session closes, or (intraday) the bar panel
    closes = pd.concat([p.closes if p.bars is None else p.bars.closes for p in panels.values()], axis=1)
    closes = closes.loc[:, ~closes.columns.duplicated()]
    seconds["walk_forward"] = round(time.perf_counter() - t0, 2)
    ours = live_round_trips(live, closes, sessions, sectors, intraday=intraday)
    theirs = wf_round_trips(wf, closes, equity, intraday=intraday)
    parity, verdict = parity_table(ours, theirs)
    orders = live.read_table(orders_table)
    counts = {
        "sessions": len(sessions),
        "sectors": len(sectors),
        "signal_runs": runs,
        "bars_streamed": streamed,
        "intraday": intraday,
        "orders": len(orders),
        "trades": len(ours),
        "wf_trades": len(theirs),
    }
    return ReplayResult(parity, verdict, ours, theirs, home, counts, seconds)


def stream_range(
    archive: MarketDataStore,
    live: MarketDataStore,
    symbols: Sequence[str],
    first: pd.Timestamp,
    last: pd.Timestamp,
    timeout: float = 600.0,
) -> int:
    """Replay the archive's bars of sessions ``first``..``last`` through a recycler (stored timestamps,
    one pass, full speed) into ``live`` with the stream ingestion; return the bars written.

    Waits on events, not on time: the ingestion's write callback counts the bars until all the
    recycler loaded are in the store (``timeout`` only bounds a broken stream)."""
    from pairs_assets.live.recycler import (
        RecyclerSettings,
        load_replay_data,
        start_recycler_thread,
    )
    from pairs_assets.live.stream import StreamIngestor, StreamSettings

    settings = RecyclerSettings(
        port=0,
        mode="date_range",
        start=str(first.date()),
        end=str(last.date()),
        speed=math.inf,
        restamp=False,
        symbols=tuple(symbols),
    )
    expected = load_replay_data(archive, settings).n_bars
    handle = start_recycler_thread(archive, settings)
    done = threading.Event()
    written = [0]

    def on_written(frame: pd.DataFrame, _at: float) -> None:
        written[0] += len(frame)
        if written[0] >= expected:
            done.set()

    ingestor = StreamIngestor(
        live,
        StreamSettings.from_env(symbols, url=handle.ws_url, flush_interval_s=0.05, report_interval_s=3600.0),
        echo=lambda _line: None,
        on_written=on_written,
    )
    thread = threading.Thread(target=ingestor.run, name="paper-replay-stream", daemon=True)
    # alpaca-py logs its own websocket's orderly close at the stop as an "error, restarting connection"
    quiet = logging.getLogger("alpaca.data.live.websocket")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        thread.start()
        if not done.wait(timeout):
            raise PaperReplayError(
                f"the stream wrote {written[0]} of the {expected} replayed bars within {timeout:.0f} s"
            )
    finally:
        ingestor.stop()
        thread.join(30)
        handle.stop()
        quiet.setLevel(level)
    return ingestor.stats.written


class SignalRunner:
    """The platform's ``signal_job`` (:data:`pairs_assets.jobs.signal_job`, the job the signal sensor
    launches) run in-process, one partition at a time, with the replay home's resources: the live
    store, the dry-run broker, a model registry in the home. The job is resolved once; each run is a
    Dagster run on an ephemeral instance."""

    def __init__(
        self,
        store,
        strategy,
        bar_source,
        home: Path,
        history_start,
        sectors,
        last_session,
        equity,
        on_drop,
        max_holding,
    ):
        import dagster as dg

        from pairs_assets.jobs import signal_job

        daily = partitions.daily_partitions_def(history_start, sectors, last_session)
        resources = {
            "store": store,
            "bar_source": bar_source,
            "strategy": strategy,
            "model_registry": ModelRegistry(
                tracking_uri=f"file:{home / 'mlruns'}", local_store_dir=str(home / "mlruns")
            ),
            "broker": BrokerResource(equity=equity),
        }
        defs = dg.Definitions(assets=[trading_signals_asset(daily, strategy)], jobs=[signal_job], resources=resources)
        self.job = defs.resolve_job_def(signal_job.name)
        # the recycler is this replay's live source: the job's live-source filter stays on (replay mode
        # off), so the session's bars it trades are the streamed ones, as live
        self.config = {
            "on_drop": on_drop,
            "max_holding": max_holding,
            "replay": False,
            "live_source": f"recycler:{STREAM_FEED}",
        }
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, partition_key: str, cutoff: pd.Timestamp) -> None:
        self.job.execute_in_process(
            partition_key=partition_key,
            instance=self.instance,
            raise_on_error=True,
            run_config={
                "ops": {SIGNAL_ASSET: {"config": {"bar_cutoff": cutoff.isoformat(), **self.config}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},  # a line per run's warnings only
            },
        )


# --- round trips ---------------------------------------------------------------------------------


def live_round_trips(
    store: MarketDataStore,
    closes: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    sectors: Sequence[str],
    *,
    intraday: bool = False,
) -> pd.DataFrame:
    """The paper book's round trips: per pair, from the fills of its orders (y then x per bar).

    A trade opens when the pair's y leg goes from flat to held and closes when it goes back to flat
    (or through zero: a reversal closes one trade and opens the next at the same fill). P&L is the
    fills' cash flows; a trade still open at the end is marked at the last session's close
    (reason ``range_end``). The exit reason is the signal row's: ``stop``, ``max_holding``,
    ``config_drop`` (flags) or ``exit``."""
    orders = store.read_table(orders_table)
    signals = store.read_table(trading_signals_table)
    columns = ["sector", "pair_id", "y", "x", "side", "entry", "exit", "reason", "shares_y", "shares_x", "pnl"]
    if orders.empty:
        return pd.DataFrame(columns=columns)
    orders = orders[orders["status"] == "filled"].copy()
    orders["bar"] = [pd.Timestamp(json.loads(r)["bar_timestamp"]) for r in orders["request"]]
    orders["sector"] = [json.loads(r).get("sector") for r in orders["request"]]
    orders["signed"] = orders["qty"].where(orders["side"] == "buy", -orders["qty"])
    reasons = {}
    for row in signals.itertuples(index=False):
        flags = str(row.flags or "").split(",")
        reason = (
            "stop" if row.action == "stop" else next((f for f in ("max_holding", "config_drop") if f in flags), "exit")
        )
        reasons[
            (
                row.pair_id,
                pd.Timestamp(row.bar_timestamp).tz_localize("UTC")
                if pd.Timestamp(row.bar_timestamp).tzinfo is None
                else pd.Timestamp(row.bar_timestamp),
            )
        ] = reason
    last = sessions[-1]
    out = []
    for pair_id, fills in orders.sort_values(["bar", "leg"], ascending=[True, False]).groupby("pair_id", sort=True):
        legs = dict(zip(fills["leg"], fills["symbol"]))  # the legs' symbols (a ticker may hold a '-')
        y, x = legs.get("y"), legs.get("x")
        held = {"y": 0.0, "x": 0.0}
        open_trade = None
        for bar, group in fills.groupby("bar", sort=True):
            bar = pd.Timestamp(bar)
            bar = bar.tz_localize("UTC") if bar.tzinfo is None else bar
            moves = {
                leg: (float(g["signed"].sum()), float(g["fill_price"].iloc[-1])) for leg, g in group.groupby("leg")
            }
            after = {leg: held[leg] + moves.get(leg, (0.0, 0.0))[0] for leg in held}
            session = bar if intraday else pd.Timestamp(str(session_of(pd.Series([bar])).iloc[0]))
            if open_trade is not None and (
                after["y"] == 0 or math.copysign(1, after["y"]) != math.copysign(1, held["y"])
            ):
                # close: the held shares go back at this bar's fill prices
                open_trade["pnl"] += sum(held[leg] * moves.get(leg, (0.0, 0.0))[1] for leg in held if leg in moves)
                open_trade.update(exit=session, reason=reasons.get((pair_id, bar), "exit"))
                out.append(open_trade)
                open_trade = None
                held = {"y": 0.0, "x": 0.0}
            if after["y"] != 0 and open_trade is None:
                opened = {leg: after[leg] - held[leg] for leg in held}
                open_trade = {
                    "sector": group["sector"].iloc[0],
                    "pair_id": pair_id,
                    "y": y,
                    "x": x,
                    "side": 1 if after["y"] > 0 else -1,
                    "entry": session,
                    "exit": pd.NaT,
                    "reason": None,
                    "shares_y": abs(after["y"]),
                    "shares_x": abs(after["x"]),
                    "pnl": -sum(opened[leg] * moves[leg][1] for leg in held if leg in moves),
                }
            held = after
        if open_trade is not None:
            mark = closes.index[-1] if intraday else last
            open_trade["pnl"] += sum(
                held[leg] * float(closes.at[mark, symbol]) for leg, symbol in (("y", y), ("x", x)) if held[leg]
            )
            open_trade.update(exit=pd.NaT, reason="range_end")
            out.append(open_trade)
    return pd.DataFrame(out, columns=columns)


def wf_round_trips(
    trades: pd.DataFrame, closes: pd.DataFrame, equity: float, *, intraday: bool = False
) -> pd.DataFrame:
    """The walk-forward's executed trades (cost 0, lag 0) as round trips in the paper book's units:
    shares ``round(|w|·equity/P_entry)`` per leg, P&L × equity, and the share-rounding tolerance
    ``Σ_legs ½·|P_exit − P_entry|`` (P_exit the close the trade is executed or marked at)."""
    columns = [
        "sector",
        "pair_id",
        "y",
        "x",
        "side",
        "entry",
        "exit",
        "reason",
        "shares_y",
        "shares_x",
        "pnl",
        "tolerance",
    ]
    out = []
    for t in trades.itertuples(index=False):
        p_y, p_x = float(closes.at[t.entry_exec, t.y]), float(closes.at[t.entry_exec, t.x])
        q_y, q_x = float(closes.at[t.exit_exec, t.y]), float(closes.at[t.exit_exec, t.x])
        out.append(
            {
                "sector": t.sector,
                "pair_id": t.pair_id,
                "y": t.y,
                "x": t.x,
                "side": int(t.side),
                "entry": _utc(t.entry_session) if intraday else pd.Timestamp(t.entry_session),
                "exit": _utc(t.exit_session) if intraday else pd.Timestamp(t.exit_session),
                "reason": "range_end" if pd.isna(t.exit_session) else t.exit_reason,
                "shares_y": float(round(abs(t.w_y) * equity / p_y)),
                "shares_x": float(round(abs(t.w_x) * equity / p_x)),
                "pnl": float(t.pnl) * equity,
                "tolerance": 0.5 * abs(q_y - p_y) + 0.5 * abs(q_x - p_x),
            }
        )
    return pd.DataFrame(out, columns=columns)


def _utc(value) -> pd.Timestamp:
    """A naive UTC bar time of the trades frame, made aware (NaT stays NaT)."""
    return pd.NaT if pd.isna(value) else pd.Timestamp(value).tz_localize("UTC")


def _day(value) -> str:
    """A session (YYYY-MM-DD) or, for an intraday bar (a UTC time), its New York time (YYYY-MM-DD HH:MM)."""
    if value is None or pd.isna(value):
        return "open"
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        return stamp.tz_convert(partitions.EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M")
    return str(stamp.date())


def parity_table(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each pair's round trips, ours beside the walk-forward's (matched in order of entry), and the verdict.

    A row matches when entry session, side, shares per leg, exit session and reason agree and
    ``|ΔP&L|`` is within the share-rounding tolerance (+1e-6)."""
    rows = []
    pairs = sorted(set(ours["pair_id"]) | set(theirs["pair_id"]))
    for pair_id in pairs:
        a = ours[ours["pair_id"] == pair_id].sort_values("entry").reset_index(drop=True)
        b = theirs[theirs["pair_id"] == pair_id].sort_values("entry").reset_index(drop=True)
        for k in range(max(len(a), len(b))):
            mine = a.iloc[k] if k < len(a) else None
            wf = b.iloc[k] if k < len(b) else None
            row = {"sector": (mine if mine is not None else wf)["sector"], "pair_id": pair_id, "trade": k + 1}
            if mine is not None:
                row.update(
                    entry=_day(mine["entry"]),
                    side=int(mine["side"]),
                    shares=f"{mine['shares_y']:g}/{mine['shares_x']:g}",
                    exit=_day(mine["exit"]),
                    reason=mine["reason"],
                    pnl=float(mine["pnl"]),
                )
            if wf is not None:
                row.update(
                    wf_entry=_day(wf["entry"]),
                    wf_side=int(wf["side"]),
                    wf_shares=f"{wf['shares_y']:g}/{wf['shares_x']:g}",
                    wf_exit=_day(wf["exit"]),
                    wf_reason=wf["reason"],
                    wf_pnl=float(wf["pnl"]),
                    tolerance=float(wf["tolerance"]),
                )
            same = (
                mine is not None
                and wf is not None
                and all(row[f] == row[f"wf_{f}"] for f in ("entry", "side", "shares", "exit", "reason"))
            )
            if mine is not None and wf is not None:
                row["d_pnl"] = row["pnl"] - row["wf_pnl"]
                same = same and abs(row["d_pnl"]) <= row["tolerance"] + 1e-6
            row["match"] = "yes" if same else "NO"
            rows.append(row)
    frame = pd.DataFrame(rows, columns=PARITY_COLUMNS)
    n = len(frame)
    bad = frame[frame["match"] != "yes"]
    max_d = float(frame["d_pnl"].abs().max()) if n and frame["d_pnl"].notna().any() else 0.0
    if n == 0:
        verdict = "PARITY (vacuous): neither side traded in the range"
    elif bad.empty:
        verdict = (
            f"PARITY: {n} round trip(s) in {len(pairs)} pair(s), identical entries and exits; "
            f"max |ΔP&L| ${max_d:,.2f}, within share rounding"
        )
    else:
        first = bad.iloc[0]
        ours_entry, wf_entry = (v if isinstance(v, str) else "none" for v in (first["entry"], first["wf_entry"]))
        verdict = (
            f"DIVERGED: {len(bad)} of {n} round trip(s) differ (first: {first['pair_id']} trade {first['trade']}, "
            f"ours entry {ours_entry} vs walk-forward {wf_entry}); max |ΔP&L| ${max_d:,.2f}"
        )
    return frame, verdict


def print_parity(result: ReplayResult, echo: Callable[[str], None] = print) -> None:
    """The parity table, the totals and the verdict."""
    frame = result.parity
    header = (
        f"{'pair':<10} {'#':>2}  {'entry':<10} {'side':>4} {'shares y/x':>11} {'exit':<10} {'reason':<11} {'P&L':>10}   "
        f"{'wf entry':<10} {'side':>4} {'shares y/x':>11} {'wf exit':<10} {'reason':<11} {'wf P&L':>10} {'ΔP&L':>8} {'tol':>7}  ok"
    )
    echo(header)
    echo("-" * len(header))

    def missing(value) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    def left(value, width: int) -> str:
        return ("–" if missing(value) else str(value)).ljust(width)

    def number(value, width: int, fmt: str) -> str:
        return ("–" if missing(value) else fmt.format(value)).rjust(width)

    def side(value) -> str:
        return ("–" if missing(value) else f"{int(value):+d}").rjust(4)

    for r in frame.itertuples(index=False):
        echo(
            f"{r.pair_id:<10} {r.trade:>2}  {left(r.entry, 10)} {side(r.side)} {left(r.shares, 11)} {left(r.exit, 10)} "
            f"{left(r.reason, 11)} {number(r.pnl, 10, '{:,.2f}')}   {left(r.wf_entry, 10)} {side(r.wf_side)} "
            f"{left(r.wf_shares, 11)} {left(r.wf_exit, 10)} {left(r.wf_reason, 11)} {number(r.wf_pnl, 10, '{:,.2f}')} "
            f"{number(r.d_pnl, 8, '{:+,.2f}')} {number(r.tolerance, 7, '{:,.2f}')}  {r.match}"
        )
    total, wf_total = result.live_trades["pnl"].sum(), result.wf_trades["pnl"].sum()
    echo(f"total P&L: paper book ${total:,.2f}, walk-forward ${wf_total:,.2f} (Δ ${total - wf_total:+,.2f})")
    echo(result.verdict)
