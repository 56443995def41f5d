"""Alpaca's historical bars as a ``BarSource`` for ``raw_bars`` (alpaca-py ``StockHistoricalDataClient``).

Chosen by ``PAIRS_BAR_SOURCE=alpaca`` (``definitions.bar_source_for``) with the keys from
the environment through ``dg.EnvVar("ALPACA_API_KEY")`` / ``dg.EnvVar("ALPACA_SECRET_KEY")``: they
are never logged and never written to metadata (``describe()`` and ``source_name`` name only the
feed and the endpoint). ``url_override`` points the client elsewhere — the recycler serves the
same endpoint, which is how this source is tested.

Credentials by destination, whatever the definitions or a run's config say: Alpaca's keys (the
values of ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``, however given) go only to Alpaca's own hosts
over https; another ``url_override`` gets the keys configured for it, else the recycler's, else the
anonymous placeholder, and a run that would send Alpaca's keys there is refused when it sets the
resource up (``pairs_assets.market.endpoints``), and again before any client is built.

Daily bars: Alpaca stamps a daily bar at midnight New York of its session; the bars contract
stamps daily bars at the session's close (so the as-of rule is a timestamp compare), so a
``1Day`` bar is re-stamped to its session's close (early closes included). Intraday bars keep
their timestamps (the bar's start, UTC). A bar whose open/high/low/volume the server marks as
filled (the recycler replaying closes-only data) gets those fields back as null.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import pandas as pd
from pydantic import Field

from pairs_assets.errors import BarsFileError, PairsError
from pairs_assets.market.calendar import EXCHANGE_TZ, nyse_calendar
from pairs_assets.market.endpoints import ENV_API_KEY, ENV_SECRET_KEY, credentials_for_destination
from pairs_assets.market.symbology import is_daily_timeframe, parse_timeframe
from pairs_assets.util import redact_url, to_utc
from resources.bar_sources import BarSource
from resources.bars import BAR_COLUMNS, conform_bars, empty_bars


class AlpacaSourceError(PairsError, RuntimeError):
    """Alpaca (or the endpoint at url_override) refused or failed a request; names the symbols."""


def _stamp_at_close(timestamps: pd.Series, symbols: pd.Series) -> pd.Series:
    calendar = nyse_calendar()
    days = timestamps.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    closes: dict[pd.Timestamp, pd.Timestamp] = {}
    for day, symbol in zip(days, symbols):
        if day not in closes:
            if not calendar.is_session(day):
                raise BarsFileError(f"Alpaca daily bar of symbol {symbol} is dated {day.date()}, not an NYSE session")
            closes[day] = calendar.session_close(day)
    return days.map(closes)


class AlpacaBarSource(BarSource):
    """Historical bars from Alpaca's market data API (or a compatible endpoint at ``url_override``)."""

    api_key: str | None = Field(default=None, repr=False, description="Set from env ALPACA_API_KEY (dg.EnvVar).")
    secret_key: str | None = Field(default=None, repr=False, description="Set from env ALPACA_SECRET_KEY (dg.EnvVar).")
    feed: str = Field(default="iex", description="iex (free) or sip.")
    timeframe: str = Field(default="1Day", description="Bar size: 1Day (stamped at the close), 1Hour, 5Min, …")
    adjustment: str = Field(default="all", description="Corporate-action adjustment: raw, split, dividend or all.")
    url_override: str | None = Field(default=None, description="Base URL instead of Alpaca's (None → Alpaca).")

    @property
    def source_name(self) -> str:
        return f"alpaca:{self.feed}"

    def describe(self) -> str:
        return f"{self.source_name} {self.timeframe} bars from {redact_url(self.url_override or 'https://data.alpaca.markets')}"

    def last_session(self) -> pd.Timestamp | None:
        """None: Alpaca's bars run to today, so the daily partitions stay open-ended."""
        return None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse, when a run sets the source up, a configuration that would send Alpaca's keys to
        another host (``CredentialsDestinationError``: the resource and the URL, never a key)."""
        self._credentials()

    def _credentials(self) -> tuple[str | None, str | None]:
        return credentials_for_destination("bar_source", self.url_override, self.api_key, self.secret_key)

    def _client(self):
        from alpaca.data.historical import StockHistoricalDataClient

        key, secret = self._credentials()  # Alpaca's keys only to Alpaca's own hosts over https
        if not (key and secret):
            raise AlpacaSourceError(
                f"the Alpaca bar source needs {ENV_API_KEY} and {ENV_SECRET_KEY} in the environment"
            )
        return StockHistoricalDataClient(key, secret, raw_data=True, url_override=self.url_override)

    def load_bars(self, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Bars of ``symbols`` with ``start <= timestamp <= end`` (UTC) in the bars contract."""
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest

        from pairs_assets.market import wire

        symbols = sorted(set(symbols))
        if not symbols:
            return empty_bars()
        start, end = to_utc(start), to_utc(end)
        daily = is_daily_timeframe(self.timeframe)
        # a daily bar is stamped at midnight New York by Alpaca: widen the request to whole days
        request_start = start.tz_convert("America/New_York").normalize() if daily else start
        try:
            request = StockBarsRequest(
                symbol_or_symbols=symbols,
                timeframe=parse_timeframe(self.timeframe),
                start=request_start.to_pydatetime(),
                end=end.to_pydatetime(),
                feed=DataFeed(self.feed),
                adjustment=Adjustment(self.adjustment),
            )
        except ValueError as exc:
            raise AlpacaSourceError(f"bad Alpaca request for {', '.join(symbols)}: {exc}") from exc
        try:
            raw = self._client().get_stock_bars(request) or {}
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            raise AlpacaSourceError(
                f"{self.describe()} refused bars of {', '.join(symbols[:10])}"
                f"{' …' if len(symbols) > 10 else ''} (HTTP {status}): {exc}"
            ) from exc
        except OSError as exc:
            raise AlpacaSourceError(f"{self.describe()} is unreachable: {exc}") from exc
        rows = []
        for symbol in sorted(raw):
            if symbol not in symbols:
                continue
            for message in raw[symbol]:
                try:
                    rows.append(wire.bar_record(symbol, message, self.source_name))
                except ValueError as exc:
                    raise AlpacaSourceError(str(exc)) from exc
        if not rows:
            return empty_bars()
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        if daily:
            frame["timestamp"] = _stamp_at_close(frame["timestamp"], frame["symbol"])
            frame = frame.drop_duplicates(["symbol", "timestamp"], keep="last")
        frame = frame[(frame["timestamp"] >= start) & (frame["timestamp"] <= end)]
        if frame.empty:
            return empty_bars()
        return conform_bars(frame, self.source_name)[BAR_COLUMNS]
