"""The live symbol list: which symbols the stream and the recycler use, and proxies for missing data.

Stored as JSON in ``<PAIRS_HOME>/live_symbols.json`` (written atomically: temp file + rename)::

    {
      "schema_version": 1,
      "mode": "replay",                      # "replay" (the recycler) or "alpaca" (Alpaca's stream)
      "recycler_url": "ws://127.0.0.1:8765/v2/iex",
      "symbols": ["AAPL", "KO", "PEP"],
      "proxies": {"XYZ": "AAPL"},            # XYZ has no stored bars: the recycler replays AAPL's
      "default_proxy": null                  # stand-in for any symbol without bars (the original: AAPL)
    }

Without the file, the symbols are the universe's and the mode is ``replay``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.market.symbology import MAX_SYMBOL_LENGTH, is_symbol
from pairs_assets.util import atomic_write_bytes

SCHEMA_VERSION = 1
LIVE_MODES = ("replay", "alpaca")
DEFAULT_RECYCLER_URL = "ws://127.0.0.1:8765/v2/iex"
FILE_NAME = "live_symbols.json"


class LiveSymbolsError(PairsError, ValueError):
    """The live symbols file or a requested change is invalid; names the field or symbol."""


def check_symbol(symbol: str, field: str = "symbol") -> str:
    value = str(symbol).strip().upper()
    if not is_symbol(value):
        raise LiveSymbolsError(
            f"{field}: {symbol!r} is not a ticker (letters, digits, '.' or '-', up to {MAX_SYMBOL_LENGTH})"
        )
    return value


@dataclasses.dataclass(frozen=True)
class LiveSymbols:
    mode: str = "replay"
    symbols: tuple[str, ...] = ()
    proxies: dict[str, str] = dataclasses.field(default_factory=dict)
    default_proxy: str | None = None
    recycler_url: str = DEFAULT_RECYCLER_URL

    def __post_init__(self) -> None:
        if self.mode not in LIVE_MODES:
            raise LiveSymbolsError(f"mode must be one of {', '.join(LIVE_MODES)}, got {self.mode!r}")

    def proxy_for(self, symbol: str) -> str | None:
        return self.proxies.get(symbol) or self.default_proxy

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "mode": self.mode,
            "recycler_url": self.recycler_url,
            "symbols": sorted(self.symbols),
            "proxies": dict(sorted(self.proxies.items())),
            "default_proxy": self.default_proxy,
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> LiveSymbols:
        if not isinstance(data, dict):
            raise LiveSymbolsError(f"{source}: expected a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise LiveSymbolsError(f"{source}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        symbols = data.get("symbols", [])
        if not isinstance(symbols, list):
            raise LiveSymbolsError(f"{source}: field 'symbols' must be a list")
        proxies = data.get("proxies") or {}
        if not isinstance(proxies, dict):
            raise LiveSymbolsError(f"{source}: field 'proxies' must be an object symbol -> proxy symbol")
        default_proxy = data.get("default_proxy")
        try:
            return cls(
                mode=str(data.get("mode", "replay")),
                symbols=tuple(sorted({check_symbol(s, f"{source}: symbols") for s in symbols})),
                proxies={
                    check_symbol(k, f"{source}: proxies"): check_symbol(v, f"{source}: proxies.{k}")
                    for k, v in proxies.items()
                },
                default_proxy=check_symbol(default_proxy, f"{source}: default_proxy") if default_proxy else None,
                recycler_url=str(data.get("recycler_url") or DEFAULT_RECYCLER_URL),
            )
        except LiveSymbolsError:
            raise
        except (TypeError, ValueError) as exc:
            raise LiveSymbolsError(f"{source}: {exc}") from exc


def live_symbols_path(home: str | Path) -> Path:
    """``<home>/live_symbols.json``."""
    return Path(home) / FILE_NAME


def default_live_symbols(universe_file: str | Path) -> LiveSymbols:
    """Every symbol of the universe ``universe_file``, live mode off."""
    from pairs_assets.universe import load_universe

    return LiveSymbols(symbols=tuple(load_universe(universe_file).all_symbols))


def load_live_symbols(path: Path, *, universe_file: str | Path) -> LiveSymbols:
    """The live symbols saved at ``path``; without a file, :func:`default_live_symbols` of ``universe_file``."""
    if not path.exists():
        return default_live_symbols(universe_file)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LiveSymbolsError(f"cannot read {path}: {exc}") from exc
    return LiveSymbols.from_json(data, str(path))


def save_live_symbols(config: LiveSymbols, path: Path) -> Path:
    """Write atomically (temp file in the same folder, fsync, rename)."""
    atomic_write_bytes(path, (json.dumps(config.to_json(), indent=2, sort_keys=False) + "\n").encode())
    return path


def add_symbols(config: LiveSymbols, symbols: list[str]) -> LiveSymbols:
    return dataclasses.replace(config, symbols=tuple(sorted(set(config.symbols) | {check_symbol(s) for s in symbols})))


def remove_symbols(config: LiveSymbols, symbols: list[str]) -> LiveSymbols:
    drop = {check_symbol(s) for s in symbols}
    unknown = sorted(drop - set(config.symbols))
    if unknown:
        raise LiveSymbolsError(
            f"symbol(s) {', '.join(unknown)} are not in the live list ({', '.join(config.symbols) or 'empty'})"
        )
    proxies = {k: v for k, v in config.proxies.items() if k not in drop}
    return dataclasses.replace(config, symbols=tuple(s for s in config.symbols if s not in drop), proxies=proxies)


def set_proxy(config: LiveSymbols, symbol: str, proxy: str | None) -> LiveSymbols:
    symbol = check_symbol(symbol)
    proxies = dict(config.proxies)
    if proxy is None:
        if symbol not in proxies:
            raise LiveSymbolsError(f"symbol {symbol} has no proxy")
        proxies.pop(symbol)
    else:
        proxy = check_symbol(proxy, "proxy")
        if proxy == symbol:
            raise LiveSymbolsError(f"symbol {symbol} cannot be its own proxy")
        proxies[symbol] = proxy
    return dataclasses.replace(config, proxies=proxies)


def symbol_status(config: LiveSymbols, counts: pd.DataFrame) -> pd.DataFrame:
    """Per live symbol: bars stored (all sources), sources, last bar, and the proxy that would stand in.

    ``counts`` is ``MarketDataStore.bar_counts()``. ``status`` is ``data`` (stored bars), ``proxy``
    (none, a proxy with bars stands in), or ``missing`` (neither: the recycler refuses it).
    """
    rows = []
    counts = counts.copy()
    counts["source"] = counts["source"].astype(str)
    real = counts[~counts["source"].str.contains(r"\+proxy:", regex=True)]
    by_symbol = real.groupby("symbol")
    totals = by_symbol["bars"].sum().to_dict() if not real.empty else {}
    lasts = by_symbol["last"].max().to_dict() if not real.empty else {}
    sources = by_symbol["source"].apply(lambda s: ", ".join(sorted(s))).to_dict() if not real.empty else {}
    for symbol in sorted(set(config.symbols) | set(config.proxies)):
        bars = int(totals.get(symbol, 0))
        proxy = None if bars else config.proxy_for(symbol)
        status = "data" if bars else ("proxy" if proxy and totals.get(proxy, 0) else "missing")
        rows.append(
            {
                "symbol": symbol,
                "bars": bars,
                "sources": sources.get(symbol, ""),
                "last_bar": None if symbol not in lasts else str(pd.Timestamp(lasts[symbol])),
                "proxy": proxy or "",
                "status": status if symbol in config.symbols else f"{status} (proxy only)",
            }
        )
    return pd.DataFrame(rows, columns=["symbol", "bars", "sources", "last_bar", "proxy", "status"])
