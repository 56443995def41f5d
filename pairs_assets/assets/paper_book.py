"""paper_book: the live path's book marked at a session's close — positions, P&L, costs, exposure.

**Partitioned by session only** (the ``date`` dimension of the daily partitions), not by session ×
sector: the book is one broker account. The risk limits it is checked against (``max_portfolio_risk``
5 % of equity of daily volatility for the pairs *together*, ``max_position`` 10 % per leg) are limits
on the whole account, so the check that blocks further orders must see every sector at once — a
sector partition could pass while the account breaches. The per-sector view is inside each
partition (the ``by_sector`` table, per-sector totals), and sessions-only keeps the group at one
partition per session on the instance (a few thousand, not × sectors).

No declared upstream asset: the book reads the store's ``orders`` (what the broker recorded — the
signal job writes them as a side effect, not as an asset output) and ``bars``; a partition mapping
from a session to ``trading_signals`` would either be off by one session (``D|sector`` trades the
session after D) or fan in every partition.

A run for session S reads the broker's live orders (``orders`` table: not rejected, canceled, …)
whose bar is at or before S's close, marks them at every session close from the first fill's
session to S (:func:`pairs_assets.quant.paper_book.mark_book`: average cost, realised and
unrealised P&L, the walk-forward's ``cost_bp`` model, gross and net exposure) and reports per pair,
per sector and in total, with the equity and drawdown plot the walk-forward draws
(:func:`pairs_assets.reporting.equity_figure`, P&L as a fraction of the broker's equity) written to
``<home>/paper_book/<S>/equity.png`` with the per-pair marks (``pairs.csv``).

**Every strategy in one book.** The account is one: the book marks every strategy's orders together
(a strategy other than the primary ``garch_gru`` shows its pairs as ``<strategy>/<pair_id>``), and the
exposure check judges the account — a leg past ``max_position``, a strategy's leg plus the other
strategies' position in the symbol past ``max_position``
(:func:`pairs_assets.quant.paper_book.symbol_limit_breaches`), the whole book's ex-ante volatility
past ``max_portfolio_risk``. The walk-forward parity check replays each strategy's own trading
configs with its own rule settings (``on_drop``/``max_holding`` as its orders recorded them).

Its checks (``pairs_assets.checks.PAPER_BOOK_CHECKS``): ``exposure_within_limits`` (ERROR, blocking:
while its latest evaluation failed, the signal job sends no order that opens a position, for any strategy),
``drawdown_within_limit`` (WARN) and ``positions_match_walk_forward`` (WARN).

What materializes it: ``paper_book_schedule`` (:mod:`sensors.paper_book_schedule`: 16:30 New York
each session, today's partition; stopped by default, like the 6 AM schedule); past sessions by
launching their partitions (``dg launch --job paper_book_job --partition <session>``).
"""

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from pairs_assets import checks, partitions
from pairs_assets.assets.common import markdown_table
from pairs_assets.assets.trading_signals import session_closes
from pairs_assets.home import PairsHome
from pairs_assets.market.calendar import next_session
from pairs_assets.quant import paper_book as pb
from pairs_assets.quant import rule
from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.walkforward.replay import trade_configs
from pairs_assets.settings import StrategySettings
from pairs_assets.util import to_utc
from resources.broker import DEAD_STATUSES, BrokerResource
from resources.market_data import (
    PRIMARY_STRATEGY,
    MarketDataStore,
    orders_table,
    pair_states_table,
    trading_configs_table,
)

GROUP = "paper_book"
ASSET_NAME = "paper_book"
#: the walk-forward's headline cost (basis points of traded notional per leg)
DEFAULT_COST_BP = 5.0


class PaperBookConfig(dg.Config):
    """How the book is marked and judged."""

    cost_bp: float = Field(
        DEFAULT_COST_BP,
        ge=0.0,
        description="Cost in basis points of traded notional per leg (the walk-forward's model).",
    )
    max_drawdown: float = Field(
        0.02, gt=0.0, le=1.0, description="drawdown_within_limit warns past this drawdown (fraction of equity)."
    )
    risk_window: int = Field(
        pb.DEFAULT_RISK_WINDOW,
        ge=5,
        description="Sessions of close changes behind the book's ex-ante daily volatility.",
    )
    on_drop: str = Field(rule.DEFAULT_ON_DROP, description="The walk-forward replay's on_drop (as the signal job's).")
    max_holding: int = Field(
        rule.DEFAULT_MAX_HOLDING, ge=0, description="The walk-forward replay's max_holding (as the signal job's)."
    )


def book_pair_id(strategy: str, pair_id: str) -> str:
    """A pair's id in the book: its own for the primary strategy, ``<strategy>/<pair_id>`` for the others
    (two strategies may hold the same pair)."""
    return pair_id if strategy == PRIMARY_STRATEGY else f"{strategy}/{pair_id}"


def split_book_pair_id(book_id: str) -> tuple[str, str]:
    """(strategy, pair_id) of :func:`book_pair_id`'s id."""
    strategy, _, pair_id = book_id.rpartition("/")
    return (strategy or PRIMARY_STRATEGY), pair_id


def fills_from_orders(orders: pd.DataFrame, sectors: dict[str, str], cutoff: pd.Timestamp) -> pd.DataFrame:
    """The book's fills (:data:`pairs_assets.quant.paper_book.FILL_COLUMNS`) from ``orders`` rows: live
    statuses only, bar at or before ``cutoff``, at the fill price (the reference price while an
    Alpaca order reports none); the pair as :func:`book_pair_id` of the order's strategy; the sector
    from the order's request, else ``sectors`` (book pair id → sector)."""
    rows = []
    for row in orders.itertuples(index=False):
        if str(row.status).lower() in DEAD_STATUSES:
            continue
        request = json.loads(row.request) if row.request else {}
        bar = to_utc(request.get("bar_timestamp") or row.submitted_at)
        if bar > cutoff:
            continue
        price = row.fill_price if row.fill_price is not None and pd.notna(row.fill_price) else row.reference_price
        pair_id = book_pair_id(str(getattr(row, "strategy", None) or PRIMARY_STRATEGY), str(row.pair_id))
        sector = request.get("sector") or sectors.get(pair_id, "unknown")
        qty = float(row.qty) if row.side == "buy" else -float(row.qty)
        rows.append(
            (
                bar,
                bar.tz_convert(partitions.EXCHANGE_TZ).tz_localize(None).normalize(),
                sector,
                pair_id,
                row.leg,
                row.symbol,
                qty,
                float(price),
            )
        )
    return pd.DataFrame(rows, columns=pb.FILL_COLUMNS)


def replayed_sides(
    store: MarketDataStore,
    held: pd.DataFrame,
    legs: dict[str, tuple[str, str]],
    closes: pd.DataFrame,
    session: pd.Timestamp,
    config: PaperBookConfig,
    rules: dict[str, tuple[str, int]] | None = None,
) -> dict[str, int]:
    """Per held pair (book pair id), the side the walk-forward's replay
    (:func:`pairs_assets.quant.walkforward.replay.trade_configs`, ungated: the GRU gate only vetoes
    entries) holds at ``session``'s close, replaying its strategy's stored trading configs of the sector
    over the same session closes from the session the book opened the pair, with the strategy's
    ``(on_drop, max_holding)`` from ``rules`` (default: ``config``'s)."""
    out: dict[str, int] = {}
    t = trading_configs_table.c
    for row in held.itertuples(index=False):
        strategy, pair_id = split_book_pair_id(str(row.pair_id))
        on_drop, max_holding = (rules or {}).get(strategy, (config.on_drop, config.max_holding))
        opened = pd.Timestamp(row.opened)
        sessions = partitions.sessions_in_range(opened, session)
        stored = store.read_table(
            trading_configs_table,
            sa.and_(
                t.strategy == strategy,
                t.sector == row.sector,
                t.effective_session >= str(opened.date()),
                t.effective_session <= str(session.date()),
            ),
        )
        configs = {
            pd.Timestamp(r.as_of_session): TradingConfig.parse_stored(
                r.document, partition=f"{r.as_of_session}|{r.sector}", path=r.path
            )
            for r in stored.itertuples(index=False)
        }
        if not configs:
            continue  # no config in force: the walk-forward would not trade it; reported as flat
        trades = trade_configs(configs, closes, sessions, on_drop=on_drop, max_holding=max_holding)
        sides = pb.replay_sides(trades, session)
        y, x = legs[row.pair_id]
        flipped = {p.pair_id for c in configs.values() for p in c.pairs if (p.y, p.x) == (x, y)}
        if pair_id in sides:
            out[row.pair_id] = sides[pair_id]
        elif flipped & set(sides):  # the other ordering of the same legs: its long spread is our short
            out[row.pair_id] = -sides[sorted(flipped & set(sides))[0]]
    return out


def strategy_rules(orders: pd.DataFrame) -> dict[str, tuple[str, int]]:
    """Per strategy, the ``(on_drop, max_holding)`` its latest order recorded (the signal job puts its
    rule settings in each order's request); strategies whose orders predate that are absent."""
    out: dict[str, tuple[str, int]] = {}
    if orders.empty or "strategy" not in orders.columns:
        return out
    for row in orders.sort_values("submitted_at").itertuples(index=False):
        request = json.loads(row.request) if row.request else {}
        if "on_drop" in request and "max_holding" in request:
            out[str(row.strategy)] = (str(request["on_drop"]), int(request["max_holding"]))
    return out


def _write_files(target: Path, pairs: pd.DataFrame, figure) -> dict[str, Path]:
    """pairs.csv and equity.png into ``target``, atomically (a staging folder renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        pairs.assign(
            session=pd.to_datetime(pairs["session"]).dt.strftime("%Y-%m-%d"),
            opened=pd.to_datetime(pairs["opened"]).dt.strftime("%Y-%m-%d"),
        ).to_csv(staging / "pairs.csv", index=False, float_format="%.6f")
        figure.savefig(staging / "equity.png", dpi=110, metadata={"Software": None})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return {"pairs": target / "pairs.csv", "equity": target / "equity.png"}


def last_book_session(daily: dg.MultiPartitionsDefinition) -> pd.Timestamp | None:
    """The book's last partition: the session after ``daily``'s last (the session its last partition
    trades); None when ``daily`` is open-ended (Alpaca)."""
    last = partitions.last_session_of(daily)
    return None if last is None else next_session(last)


def book_partitions_def(daily: dg.MultiPartitionsDefinition) -> dg.TimeWindowPartitionsDefinition:
    """The sessions of ``daily``'s ``date`` dimension and one more: the signal job's partition D trades
    the session after D, so the book is marked one session past the last. Open-ended (Alpaca), that
    is the session in progress, so that its partition exists at its close (the paper_book schedule's
    16:30 tick), not only after midnight."""
    return partitions.session_partitions_def(
        partitions.history_start_of(daily), last_book_session(daily), include_current=True
    )


def paper_book_asset(daily: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    """The asset on :func:`book_partitions_def` of ``daily``, with its checks."""
    sessions_def = book_partitions_def(daily)
    return dg.asset(
        name=ASSET_NAME,
        partitions_def=sessions_def,
        group_name=GROUP,
        kinds={"sql"},
        check_specs=checks.check_specs(checks.PAPER_BOOK_CHECKS, sessions_def),
        description="The broker's paper book marked at the session's close: positions and P&L (realised, unrealised, "
        "costs at the walk-forward's bp model) per pair, per sector and in total; gross and net exposure; equity and "
        "drawdown plot. Checks: exposure within the risk limits (blocks new entries), drawdown, walk-forward parity.",
    )(paper_book)


def paper_book(
    context: dg.AssetExecutionContext,
    config: PaperBookConfig,
    store: MarketDataStore,
    broker: BrokerResource,
    strategy: StrategySettings,
    home: PairsHome,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    session = pd.Timestamp(context.partition_key)
    close = partitions.session_close_utc(session)
    states = store.read_table(pair_states_table)
    sectors = (
        {
            book_pair_id(st, pid): sector
            for st, pid, sector in zip(states["strategy"], states["pair_id"], states["sector"])
        }
        if not states.empty
        else {}
    )
    orders = store.read_table(
        orders_table, sa.and_(orders_table.c.broker == broker.name, orders_table.c.submitted_at.is_not(None))
    )
    fills = fills_from_orders(orders, sectors, close)
    equity = broker.account_equity()
    if fills.empty:
        first = session
    else:
        first = min(pd.Timestamp(fills["session"].min()), session)
    sessions = partitions.sessions_in_range(first, session)
    symbols = sorted(set(fills["symbol"]))
    risk_sessions = partitions.sessions_in_range(first - pd.Timedelta(days=2 * config.risk_window + 10), session)
    risk_start = risk_sessions[max(0, len(risk_sessions) - len(sessions) - config.risk_window)]
    closes = (
        session_closes(
            store.read_bars(symbols, partitions.session_open_utc(risk_start) - pd.Timedelta(hours=12), close)
        )
        if symbols
        else pd.DataFrame()
    )
    stale: dict[str, str] = {}
    if not closes.empty:
        closes.index = pd.DatetimeIndex(closes.index).normalize()
        closes = closes.reindex(closes.index.union(sessions)).sort_index()
        # a held symbol without a bar in a session (a halt, a feed gap) is marked at its last close: reported
        for symbol in closes.columns:
            if pd.isna(closes.at[session, symbol]) and closes[symbol].loc[:session].notna().any():
                stale[symbol] = str(closes[symbol].loc[:session].last_valid_index().date())
        closes = closes.ffill()
    marks = pb.mark_book(fills, closes, sessions, config.cost_bp)

    total = marks.total
    today = total.loc[session] if session in total.index else pd.Series(0.0, index=pb.TOTAL_COLUMNS)
    pairs_today = marks.pairs[marks.pairs["session"] == session]
    legs_today = marks.legs[marks.legs["session"] == session]
    held = pairs_today[pairs_today["side"] != 0]

    # checks: the risk limits on the whole account, the drawdown, the walk-forward's replay of the same bars
    # one account: a leg, a symbol summed over every pair and strategy holding it, the whole book
    breaches = pb.position_limit_breaches(legs_today, equity, strategy.max_position)
    if not legs_today.empty:
        by_strategy = legs_today.assign(strategy=[split_book_pair_id(str(p))[0] for p in legs_today["pair_id"]])
        breaches += pb.symbol_limit_breaches(by_strategy, equity, strategy.max_position)
    shares = legs_today.groupby("symbol")["shares"].sum().to_dict() if not legs_today.empty else {}
    daily_vol = pb.book_daily_volatility(
        shares, closes.loc[:session] if not closes.empty else closes, config.risk_window
    )
    if daily_vol > strategy.max_portfolio_risk * equity + 1e-9:
        breaches.append(
            f"book ex-ante daily volatility {daily_vol / equity:.2%} of equity > {strategy.max_portfolio_risk:.0%}"
        )
    fraction = total["pnl"] / equity
    dd = pb.drawdown(fraction)
    dd_now = float(dd.iloc[-1]) if len(dd) else 0.0
    pair_legs = {
        pid: (
            str(frame.loc[frame["leg"] == "y", "symbol"].iloc[0]) if (frame["leg"] == "y").any() else "",
            str(frame.loc[frame["leg"] == "x", "symbol"].iloc[0]) if (frame["leg"] == "x").any() else "",
        )
        for pid, frame in legs_today.groupby("pair_id")
    }
    replayed = (
        replayed_sides(store, held, pair_legs, closes, session, config, rules=strategy_rules(orders))
        if not held.empty
        else {}
    )
    disagreements = pb.held_but_not_replayed(
        {r.pair_id: (int(r.side), r.opened) for r in held.itertuples(index=False)}, replayed, session
    )
    for line in disagreements:
        context.log.warning(f"held but not held by the walk-forward: {line}")
    for line in breaches:
        context.log.error(f"risk limit breached: {line}")

    from pairs_assets.reporting import equity_figure

    long = pd.DataFrame(
        {
            "strategy": "paper book",
            "sector": "all",
            "cost_bp": config.cost_bp,
            "session": total.index,
            "pnl": fraction.to_numpy(),
        }
    )
    figure = equity_figure(long, config.cost_bp, f"paper book ({broker.name}) to {session.date()}")
    try:
        files = _write_files(Path(home.home) / "paper_book" / str(session.date()), marks.pairs, figure)
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    by_sector = (
        marks.sectors.xs(session, level="session").reset_index()
        if (not marks.sectors.empty and session in marks.sectors.index.get_level_values("session"))
        else pd.DataFrame()
    )
    pair_table = pairs_today[
        [
            "sector",
            "pair_id",
            "side",
            "shares_y",
            "shares_x",
            "realised",
            "unrealised",
            "cost",
            "net_pnl",
            "pnl",
            "gross_exposure",
            "net_exposure",
        ]
    ].sort_values(["sector", "pair_id"])
    result_checks = [
        dg.AssetCheckResult(
            check_name="exposure_within_limits",
            passed=not breaches,
            severity=checks.ERROR,
            metadata={
                "breaches": dg.MetadataValue.md("\n".join(f"- {b}" for b in breaches) or "_(none)_"),
                "max_leg_fraction": float(legs_today["notional"].abs().max() / equity) if not legs_today.empty else 0.0,
                "max_position": strategy.max_position,
                "book_daily_vol_fraction": daily_vol / equity,
                "max_portfolio_risk": strategy.max_portfolio_risk,
            },
        ),
        dg.AssetCheckResult(
            check_name="drawdown_within_limit",
            passed=dd_now >= -config.max_drawdown,
            severity=checks.WARN,
            metadata={"drawdown": dd_now, "max_drawdown": config.max_drawdown},
        ),
        dg.AssetCheckResult(
            check_name="positions_match_walk_forward",
            passed=not disagreements,
            severity=checks.WARN,
            metadata={
                "held_not_replayed": dg.MetadataValue.md("\n".join(f"- {d}" for d in disagreements) or "_(none)_"),
                "held_pairs": len(held),
            },
        ),
    ]
    return dg.MaterializeResult(
        metadata={
            "session": str(session.date()),
            "broker": broker.name,
            "equity": equity,
            "fills": len(fills),
            "first_fill_session": "" if fills.empty else str(pd.Timestamp(fills["session"].min()).date()),
            "held_pairs": len(held),
            "realised": float(today["realised"]),
            "unrealised": float(today["unrealised"]),
            "cost": float(today["cost"]),
            "net_pnl": float(today["net_pnl"]),
            "session_pnl": float(today["pnl"]),
            "gross_exposure": float(today["gross_exposure"]),
            "net_exposure": float(today["net_exposure"]),
            "gross_exposure_fraction": float(today["gross_exposure"]) / equity,
            "net_exposure_fraction": float(today["net_exposure"]) / equity,
            "drawdown": dd_now,
            "stale_marks": dg.MetadataValue.json(stale),
            "cost_bp": config.cost_bp,
            "by_sector": markdown_table(by_sector, n=50),
            "by_pair": markdown_table(pair_table, n=50),
            "equity_plot": dg.MetadataValue.path(str(files["equity"])),
            "pairs_csv": dg.MetadataValue.path(str(files["pairs"])),
            "dagster/row_count": len(pairs_today),
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        },
        check_results=result_checks,
    )
