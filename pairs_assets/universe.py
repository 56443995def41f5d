"""Sectors → symbols: loading and validating the universe file.

Format (YAML)::

    sectors:
      technology: [AAPL, AMD, MSFT]
      financial: [BAC, JPM]

Sector names become partition keys, so they must be lower-case identifiers; symbols are
upper-case tickers (letters, digits, ``.`` and ``-``). A symbol belongs to one sector only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pairs_assets.errors import UniverseError
from pairs_assets.market.symbology import is_symbol

_SECTOR_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Universe:
    """A validated mapping of sector → sorted symbols, with the file it came from."""

    sectors: dict[str, tuple[str, ...]]
    source: str

    @property
    def sector_names(self) -> list[str]:
        return sorted(self.sectors)

    @property
    def all_symbols(self) -> list[str]:
        return sorted({s for symbols in self.sectors.values() for s in symbols})

    def symbols(self, sector: str) -> tuple[str, ...]:
        try:
            return self.sectors[sector]
        except KeyError:
            raise UniverseError(
                f"sector {sector!r} is not in the universe {self.source} (sectors: {', '.join(self.sector_names)})"
            ) from None

    def sector_of(self, symbol: str) -> str | None:
        for sector, symbols in self.sectors.items():
            if symbol in symbols:
                return sector
        return None


def parse_universe(data: object, source: str) -> Universe:
    """Validate an already-parsed YAML document; raise ``UniverseError`` naming the bad field."""
    if not isinstance(data, dict) or "sectors" not in data:
        raise UniverseError(f"{source}: expected a mapping with a top-level 'sectors' key")
    raw = data["sectors"]
    if not isinstance(raw, dict) or not raw:
        raise UniverseError(f"{source}: 'sectors' must be a non-empty mapping of sector -> [symbols]")
    sectors: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for sector, symbols in raw.items():
        if not isinstance(sector, str) or not _SECTOR_RE.match(sector):
            raise UniverseError(f"{source}: sector name {sector!r} must be a lower-case identifier (e.g. 'technology')")
        if not isinstance(symbols, list) or not symbols:
            raise UniverseError(f"{source}: sectors.{sector} must be a non-empty list of symbols")
        for symbol in symbols:
            if not isinstance(symbol, str) or not is_symbol(symbol):
                raise UniverseError(f"{source}: sectors.{sector} has an invalid symbol {symbol!r}")
            if symbol in owner:
                raise UniverseError(
                    f"{source}: symbol {symbol} is listed in both sectors {owner[symbol]!r} and {sector!r}"
                )
            owner[symbol] = sector
        sectors[sector] = tuple(sorted(symbols))
    return Universe(sectors=dict(sorted(sectors.items())), source=source)


def load_universe(path: str | Path) -> Universe:
    """Read and validate a universe YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UniverseError(f"cannot read universe file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UniverseError(f"universe file {path} is not valid YAML: {exc}") from exc
    return parse_universe(data, str(path))
