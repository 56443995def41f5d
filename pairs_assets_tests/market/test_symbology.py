"""One definition of a valid symbol and timeframe, at its boundaries, and every user of it agreeing."""

from __future__ import annotations

import pytest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from pairs_assets.errors import UniverseError
from pairs_assets.live.recycler import RecyclerError, RecyclerSettings
from pairs_assets.live.recycler.history import HistoryEndpoint, HttpError
from pairs_assets.live.symbols import LiveSymbolsError, check_symbol
from pairs_assets.market.symbology import (
    MAX_SYMBOL_LENGTH,
    is_daily_timeframe,
    is_symbol,
    is_timeframe,
    parse_timeframe,
)
from pairs_assets.universe import parse_universe

VALID = ["A", "KO", "AAPL", "BRK.B", "BRK-B", "BF.B", "A1", "ABCDEFGHIJ"]
INVALID = [
    "",  # empty
    "ABCDEFGHIJK",  # 11 characters: one past the longest
    "aapl",  # lower case
    "1ABC",  # starts with a digit
    ".A",  # starts with punctuation
    "BTC/USD",  # Alpaca's crypto pair, not a US equity
    "AAPL\n",  # a trailing newline (a regex's "$" would let it through)
    " AAPL",
    "AAPL ",
    "AA PL",
    "AAPL*",
]


def test_symbol_boundaries():
    assert MAX_SYMBOL_LENGTH == len("ABCDEFGHIJ")
    assert [s for s in VALID if not is_symbol(s)] == []
    assert [s for s in INVALID if is_symbol(s)] == []
    assert not is_symbol(None) and not is_symbol(5)


@pytest.mark.parametrize("symbol", ["ABCDEFGHIJ", "BRK.B"])
def test_every_user_accepts_a_valid_symbol(symbol):
    assert parse_universe({"sectors": {"tech": [symbol]}}, "test.yaml").sectors["tech"] == (symbol,)
    assert check_symbol(symbol) == symbol
    assert RecyclerSettings(symbols=(symbol,)).symbols == (symbol,)


@pytest.mark.parametrize("symbol", ["ABCDEFGHIJK", "BTC/USD", "1ABC", "A B"])
def test_every_user_refuses_an_invalid_symbol(symbol):
    with pytest.raises(UniverseError, match="invalid symbol"):
        parse_universe({"sectors": {"tech": [symbol]}}, "test.yaml")
    with pytest.raises(LiveSymbolsError, match="is not a ticker"):
        check_symbol(symbol)
    with pytest.raises(RecyclerError, match="invalid symbol"):
        RecyclerSettings(symbols=(symbol,))
    with pytest.raises(RecyclerError, match="invalid symbol"):
        RecyclerSettings(proxies={"AAPL": symbol})
    endpoint = HistoryEndpoint(store=None, settings=RecyclerSettings())  # refuses before reading the store
    with pytest.raises(HttpError, match="invalid symbol") as refused:
        endpoint.historical_bars({"symbols": [symbol], "timeframe": ["1Day"]})
    assert refused.value.status == 400


def test_files_and_settings_take_the_symbol_as_written_the_cli_normalises_typing():
    """A universe file or recycler setting with ``"AAPL\\n"`` is refused; a typed `` brk.b `` is BRK.B."""
    with pytest.raises(UniverseError, match="invalid symbol"):
        parse_universe({"sectors": {"tech": ["AAPL\n"]}}, "test.yaml")
    with pytest.raises(RecyclerError, match="invalid symbol"):
        RecyclerSettings(symbols=("AAPL\n",))
    assert check_symbol(" brk.b ") == "BRK.B"
    with pytest.raises(LiveSymbolsError, match="up to 10"):
        check_symbol("abcdefghijk")


UNIT_TEXT = {
    TimeFrameUnit.Minute: ["Min", "T"],
    TimeFrameUnit.Hour: ["Hour", "H"],
    TimeFrameUnit.Day: ["Day", "D"],
    TimeFrameUnit.Week: ["Week", "W"],
    TimeFrameUnit.Month: ["Month", "M"],
}


def _alpaca_accepts(amount: int, unit: TimeFrameUnit) -> bool:
    try:
        TimeFrame.validate_timeframe(amount, unit)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("unit", list(UNIT_TEXT))
def test_timeframes_are_the_ones_alpaca_py_accepts(unit):
    """Against alpaca-py's own validation, every amount 1-70 of every unit, long and short names."""
    for text in UNIT_TEXT[unit]:
        for amount in range(1, 71):
            value = f"{amount}{text}"
            assert is_timeframe(value) == _alpaca_accepts(amount, unit), value
            if is_timeframe(value):
                parsed = parse_timeframe(value)
                assert (parsed.amount, parsed.unit) == (amount, unit)


def test_timeframe_boundaries():
    for value in ["1Min", "59Min", "23Hour", "1Day", "1D", "1Week", "12Month"]:
        assert is_timeframe(value), value
    for value in ["0Min", "60Min", "24Hour", "2Day", "5Month", "05Min", "5min", "1Day\n", " 1Day", "Day", "", None]:
        assert not is_timeframe(value), value
    with pytest.raises(ValueError, match="timeframe '60Min'"):
        parse_timeframe("60Min")
    assert is_daily_timeframe("1Day") and is_daily_timeframe("1D")
    assert not is_daily_timeframe("1Hour") and not is_daily_timeframe("2Day")
    endpoint = HistoryEndpoint(store=None, settings=RecyclerSettings())
    with pytest.raises(HttpError, match="invalid timeframe") as refused:
        endpoint.historical_bars({"symbols": ["AAPL"], "timeframe": ["60Min"]})
    assert refused.value.status == 422
