"""``pairs recycler``, ``pairs stream`` and ``pairs symbols …`` (click), registered by ``pairs_assets.cli``.

Also runnable alone: ``python -m pairs_assets.live.commands recycler …``. Errors take the one
path every ``pairs`` command shares (``pairs_assets.cli_common``): one line on stderr, exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import click

from pairs_assets.cli_common import pairs_group


def _store(database_url: str | None):
    from pairs_assets.settings import paths
    from resources.market_data import MarketDataStore

    return MarketDataStore(database_url=database_url or paths().database_url)


def _symbols_path(path: str | None) -> Path:
    from pairs_assets.live.symbols import live_symbols_path
    from pairs_assets.settings import paths

    return Path(path) if path else live_symbols_path(paths().home)


def _load_live_symbols(path: Path):
    """The live symbols at ``path`` (default: the environment's universe, the CLI's edge)."""
    from pairs_assets.live.symbols import load_live_symbols
    from pairs_assets.settings import paths

    return load_live_symbols(path, universe_file=paths().universe_file)


def _split(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v.strip().upper() for v in value.split(",") if v.strip())
    return out


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("websockets", "websockets.server", "websockets.client", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- recycler ------------------------------------------------------------------------------------


@click.command("recycler")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (127.0.0.1 = this machine only)."
)
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 = any free port).")
@click.option("--mode", type=click.Choice(["loop", "date_range", "single_pass"]), default="loop", show_default=True)
@click.option("--loops", default=-1, show_default=True, type=int, help="Passes in loop mode (-1 = forever).")
@click.option("--start", default=None, help="First date/time replayed (New York date or ISO timestamp).")
@click.option("--end", default=None, help="Last date/time replayed (inclusive).")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=float,
    help="Speed factor: 1 = one bar step per --bar-interval seconds; 'inf' = as fast as clients read.",
)
@click.option(
    "--bar-interval", default=60.0, show_default=True, type=float, help="Seconds between bar steps at speed 1."
)
@click.option(
    "--restamp/--keep-timestamps",
    default=True,
    show_default=True,
    help="Stamp bars with the current time, or keep the stored times.",
)
@click.option(
    "--symbols",
    "symbols_opt",
    multiple=True,
    help="Symbols to replay (comma-separated; default: the live symbol list).",
)
@click.option("--all-symbols", is_flag=True, help="Replay every symbol in the store.")
@click.option(
    "--proxy", "proxy_opt", multiple=True, help="SYMBOL=PROXY: replay PROXY's bars as SYMBOL (labelled 'proxy')."
)
@click.option(
    "--default-proxy", default=None, help="Stand-in for any symbol without stored bars (the original used AAPL)."
)
@click.option(
    "--source", default=None, help="Replay only this stored source (default: per symbol, the source with most bars)."
)
@click.option("--tail", default=None, type=int, help="Replay only the last N bar steps.")
@click.option(
    "--exit-when-done", is_flag=True, help="Exit when the replay ends (date_range, single_pass, finite loops)."
)
@click.option("--report-every", default=30.0, show_default=True, type=float, help="Seconds between status lines.")
@click.option(
    "--max-emitted-bars",
    default=1_000_000,
    show_default=True,
    type=int,
    help="Re-stamped bars kept for the historical endpoint, all symbols together (the oldest go first; ~75 bytes each).",
)
@click.option(
    "--database-url",
    default=None,
    help="Market data store URL (default: PAIRS_DATABASE_URL or the SQLite file under PAIRS_HOME).",
)
@click.option("--symbols-file", default=None, help="Live symbols file (default: <PAIRS_HOME>/live_symbols.json).")
@click.option("--verbose", is_flag=True)
def recycler(
    host,
    port,
    mode,
    loops,
    start,
    end,
    speed,
    bar_interval,
    restamp,
    symbols_opt,
    all_symbols,
    proxy_opt,
    default_proxy,
    source,
    tail,
    exit_when_done,
    report_every,
    max_emitted_bars,
    database_url,
    symbols_file,
    verbose,
):
    """Replay stored bars as Alpaca's market-data stream and historical endpoint.

    Clients: StockDataStream(key, secret, url_override="ws://HOST:PORT/v2/iex") and
    StockHistoricalDataClient(key, secret, url_override="http://HOST:PORT"). Keys are checked
    only when PAIRS_RECYCLER_KEY and PAIRS_RECYCLER_SECRET are set.
    """
    from pairs_assets.live.recycler import RecyclerSettings, serve_until_signalled
    from pairs_assets.live.stream import ENV_RECYCLER_KEY, ENV_RECYCLER_SECRET

    _logging(verbose)
    live = _load_live_symbols(_symbols_path(symbols_file))
    proxies = dict(live.proxies)
    for item in proxy_opt:
        symbol, sep, stand_in = item.partition("=")
        if not sep or not symbol or not stand_in:
            raise click.BadParameter(f"{item!r} is not SYMBOL=PROXY", param_hint="--proxy")
        proxies[symbol.strip().upper()] = stand_in.strip().upper()
    symbols = () if all_symbols else tuple(_split(symbols_opt) or live.symbols)
    settings = RecyclerSettings(
        host=host,
        port=port,
        mode=mode,
        loops=loops,
        start=start,
        end=end,
        speed=speed,
        bar_interval_s=bar_interval,
        restamp=restamp,
        symbols=symbols,
        proxies=proxies,
        default_proxy=(default_proxy or live.default_proxy),
        source=source,
        tail=tail,
        max_emitted_bars=max_emitted_bars,
        api_key=os.environ.get(ENV_RECYCLER_KEY) or None,
        secret_key=os.environ.get(ENV_RECYCLER_SECRET) or None,
    )
    if proxies or settings.default_proxy:
        click.echo(
            "PROXY DATA: "
            + ", ".join(f"{s} ← {p}" for s, p in sorted(proxies.items()))
            + (f"; any other symbol without bars ← {settings.default_proxy}" if settings.default_proxy else "")
            + " (bars labelled 'proxy'; stored with source …+proxy:<SYMBOL>)"
        )
    store = _store(database_url)
    stats = asyncio.run(
        serve_until_signalled(
            store, settings, report_every_s=report_every, exit_when_done=exit_when_done, echo=click.echo
        )
    )
    click.echo(
        f"recycler stopped: {stats.steps_emitted} steps, {stats.bars_emitted} bars emitted, {stats.bars_sent} sent"
    )


# --- stream --------------------------------------------------------------------------------------


@click.command("stream")
@click.option(
    "--symbols", "symbols_opt", multiple=True, help="Symbols (comma-separated; default: the live symbol list)."
)
@click.option("--url", default=None, help="Stream URL, e.g. ws://127.0.0.1:8765/v2/iex (default: by live mode).")
@click.option(
    "--alpaca", "use_alpaca", is_flag=True, help="Stream from Alpaca (keys from ALPACA_API_KEY / ALPACA_SECRET_KEY)."
)
@click.option("--feed", default="iex", show_default=True, type=click.Choice(["iex", "sip"]))
@click.option(
    "--source", default=None, help="Source label of the stored bars (default: alpaca:<feed>-stream or recycler:<feed>)."
)
@click.option(
    "--historical-url",
    default=None,
    help="Historical endpoint for gap backfills (default: the stream's host, or Alpaca).",
)
@click.option("--backfill-timeframe", default="1Min", show_default=True)
@click.option("--no-backfill", is_flag=True, help="Do not fetch the bars missed while disconnected.")
@click.option("--flush-interval", default=1.0, show_default=True, type=float, help="Seconds between writes.")
@click.option("--report-every", default=30.0, show_default=True, type=float, help="Seconds between count reports.")
@click.option(
    "--max-seconds",
    default=None,
    type=float,
    help="Stop after this many seconds (default: run until Ctrl-C / SIGTERM).",
)
@click.option(
    "--database-url",
    default=None,
    help="Market data store URL (default: PAIRS_DATABASE_URL or the SQLite file under PAIRS_HOME).",
)
@click.option("--symbols-file", default=None, help="Live symbols file (default: <PAIRS_HOME>/live_symbols.json).")
@click.option("--verbose", is_flag=True)
def stream(
    symbols_opt,
    url,
    use_alpaca,
    feed,
    source,
    historical_url,
    backfill_timeframe,
    no_backfill,
    flush_interval,
    report_every,
    max_seconds,
    database_url,
    symbols_file,
    verbose,
):
    """Write live bars (Alpaca or the recycler) to the market data store until Ctrl-C / SIGTERM."""
    from pairs_assets.live.stream import StreamIngestor, StreamSettings

    _logging(verbose)
    live = _load_live_symbols(_symbols_path(symbols_file))
    if use_alpaca and url:
        raise click.UsageError("--alpaca and --url exclude each other")
    if not use_alpaca and url is None and live.mode == "replay":
        url = live.recycler_url
    symbols = _split(symbols_opt) or list(live.symbols)
    settings = StreamSettings.from_env(
        symbols,
        url=None if use_alpaca else url,
        feed=feed,
        source=source,
        historical_url=historical_url,
        backfill_timeframe=backfill_timeframe,
        backfill=not no_backfill,
        flush_interval_s=flush_interval,
        report_interval_s=report_every,
    )
    ingestor = StreamIngestor(_store(database_url), settings, echo=click.echo)
    stats = ingestor.run(max_seconds=max_seconds, install_signal_handlers=True)
    click.echo(
        json.dumps(
            {
                "received": stats.received,
                "written": stats.written,
                "backfilled": stats.backfilled,
                "rejected": stats.rejected,
                "reconnects": stats.reconnects,
            },
            sort_keys=True,
        )
    )


# --- symbols -------------------------------------------------------------------------------------


@click.group("symbols", cls=click.Group)
@click.option("--symbols-file", default=None, help="Live symbols file (default: <PAIRS_HOME>/live_symbols.json).")
@click.pass_context
def symbols(ctx, symbols_file):
    """The live symbol list, the live mode and proxies for symbols without data."""
    ctx.obj = {"path": _symbols_path(symbols_file)}


def _update(ctx, change) -> None:
    from pairs_assets.live.symbols import save_live_symbols

    path = ctx.obj["path"]
    config = change(_load_live_symbols(path))
    save_live_symbols(config, path)
    click.echo(f"{path}: mode {config.mode}, {len(config.symbols)} symbol(s), {len(config.proxies)} proxy(ies)")


@symbols.command("status")
@click.option(
    "--database-url", default=None, help="Market data store URL (default: PAIRS_DATABASE_URL or PAIRS_HOME's SQLite)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def symbols_status(ctx, database_url, as_json):
    """Mode, symbols and, per symbol, bars stored and whether a proxy would stand in."""
    from pairs_assets.live.symbols import symbol_status

    config = _load_live_symbols(ctx.obj["path"])
    store = _store(database_url)
    table = symbol_status(config, store.bar_counts())
    if as_json:
        click.echo(
            json.dumps(
                {**config.to_json(), "store": store.display_url, "status": table.to_dict("records")},
                default=str,
                indent=2,
            )
        )
        return
    click.echo(
        f"file:         {ctx.obj['path']}{'' if ctx.obj['path'].exists() else ' (absent: defaults from the universe)'}"
    )
    click.echo(
        f"mode:         {config.mode}"
        + (
            f" (recycler {config.recycler_url})"
            if config.mode == "replay"
            else " (Alpaca, keys from ALPACA_API_KEY / ALPACA_SECRET_KEY)"
        )
    )
    click.echo(f"store:        {store.display_url}")
    click.echo(f"default proxy: {config.default_proxy or '-'}")
    click.echo(table.to_string(index=False) if not table.empty else "(no symbols)")
    missing = table[table["status"].str.startswith("missing")]["symbol"].tolist() if not table.empty else []
    if missing:
        click.echo(
            f"\n{len(missing)} symbol(s) without data or proxy: {', '.join(missing)} — the recycler refuses them; "
            "add a proxy (`pairs symbols proxy SYMBOL AAPL`) or load their bars."
        )


@symbols.command("add")
@click.argument("new_symbols", nargs=-1, required=True)
@click.pass_context
def symbols_add(ctx, new_symbols):
    """Add symbols to the live list."""
    from pairs_assets.live.symbols import add_symbols

    _update(ctx, lambda c: add_symbols(c, _split(new_symbols)))


@symbols.command("remove")
@click.argument("old_symbols", nargs=-1, required=True)
@click.pass_context
def symbols_remove(ctx, old_symbols):
    """Remove symbols (and their proxies) from the live list."""
    from pairs_assets.live.symbols import remove_symbols

    _update(ctx, lambda c: remove_symbols(c, _split(old_symbols)))


@symbols.command("mode")
@click.argument("mode", type=click.Choice(["replay", "alpaca"]))
@click.option("--recycler-url", default=None, help="Recycler stream URL used in replay mode.")
@click.pass_context
def symbols_mode(ctx, mode, recycler_url):
    """Set the live mode: replay (the recycler) or alpaca (Alpaca's stream)."""
    import dataclasses

    _update(ctx, lambda c: dataclasses.replace(c, mode=mode, recycler_url=recycler_url or c.recycler_url))


@symbols.command("proxy")
@click.argument("symbol")
@click.argument("proxy")
@click.pass_context
def symbols_proxy(ctx, symbol, proxy):
    """Let PROXY's bars stand in for SYMBOL in replays (labelled as proxy data)."""
    from pairs_assets.live.symbols import set_proxy

    _update(ctx, lambda c: set_proxy(c, symbol, proxy))


@symbols.command("unproxy")
@click.argument("symbol")
@click.pass_context
def symbols_unproxy(ctx, symbol):
    """Remove SYMBOL's proxy."""
    from pairs_assets.live.symbols import set_proxy

    _update(ctx, lambda c: set_proxy(c, symbol, None))


@symbols.command("default-proxy")
@click.argument("symbol", required=False)
@click.pass_context
def symbols_default_proxy(ctx, symbol):
    """Set (or, without SYMBOL, clear) the stand-in for every symbol without data."""
    import dataclasses

    from pairs_assets.live.symbols import check_symbol

    _update(ctx, lambda c: dataclasses.replace(c, default_proxy=check_symbol(symbol) if symbol else None))


@symbols.command("from-universe")
@click.option("--sector", "sectors", multiple=True, help="Only these sectors (default: all).")
@click.pass_context
def symbols_from_universe(ctx, sectors):
    """Replace the live list by the universe's symbols (PAIRS_UNIVERSE_FILE or the embedded one)."""
    import dataclasses

    from pairs_assets.settings import paths
    from pairs_assets.universe import load_universe

    universe = load_universe(paths().universe_file)
    chosen = sorted({s for sector in (sectors or universe.sector_names) for s in universe.symbols(sector)})
    _update(ctx, lambda c: dataclasses.replace(c, symbols=tuple(chosen)))


@pairs_group("live")
def main(debug: bool) -> None:
    """The live path alone (the `pairs` CLI registers the same commands)."""


main.add_command(recycler)
main.add_command(stream)
main.add_command(symbols)

if __name__ == "__main__":
    main()
