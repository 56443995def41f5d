"""What a valid symbol and a valid bar timeframe are: one definition for the universe file, the live
symbols file, the recycler (stream subscriptions, the historical endpoint, its settings), the stream
backfill and the Alpaca bar source.

Symbols are Alpaca US-equity symbols (asset class ``us_equity``): an upper-case letter, then
upper-case letters, digits, ``.`` (a share class, as Alpaca writes it: ``BRK.B``) or ``-`` (the
same class as other vendors write it: ``BRK-B``), at most 10 characters in all. ``/`` separates a
crypto pair in Alpaca's symbology (``BTC/USD``) and is not part of a US-equity symbol; the platform
trades US equities only. The whole string must match: ``"AAPL\\n"`` is not a symbol.

Timeframes are alpaca-py's ``TimeFrame`` values written as text (``1Min``, ``5Min``, ``1Hour``,
``1Day``, ``1Week``, ``1Month``; ``T``, ``H``, ``D``, ``W``, ``M`` are the short units) with the
amounts alpaca-py accepts (``TimeFrame.validate_timeframe``): minutes 1-59, hours 1-23, one day or
one week, months 1, 2, 3, 6 or 12.

References
----------
Alpaca, "Assets" (Trading API): the ``symbol`` of a ``us_equity`` asset; crypto pairs as
``BTC/USD``. alpaca-py, ``alpaca/data/timeframe.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alpaca.data.timeframe import TimeFrame

__all__ = [
    "MAX_SYMBOL_LENGTH",
    "SYMBOL_PATTERN",
    "TIMEFRAME_PATTERN",
    "is_daily_timeframe",
    "is_symbol",
    "is_timeframe",
    "parse_timeframe",
]

#: Longest symbol accepted (characters).
MAX_SYMBOL_LENGTH = 10
#: A US-equity symbol (matched against the whole string).
SYMBOL_PATTERN = re.compile(rf"[A-Z][A-Z0-9.\-]{{0,{MAX_SYMBOL_LENGTH - 1}}}")
#: A timeframe's text: an amount and a unit (matched against the whole string).
TIMEFRAME_PATTERN = re.compile(r"([1-9][0-9]*)(Min|T|Hour|H|Day|D|Week|W|Month|M)")

_UNITS = {
    "Min": "Minute",
    "T": "Minute",
    "Hour": "Hour",
    "H": "Hour",
    "Day": "Day",
    "D": "Day",
    "Week": "Week",
    "W": "Week",
    "Month": "Month",
    "M": "Month",
}
_MONTH_AMOUNTS = (1, 2, 3, 6, 12)


def is_symbol(value: object) -> bool:
    """Whether ``value`` is a US-equity symbol as Alpaca writes it (see the module docstring)."""
    return isinstance(value, str) and SYMBOL_PATTERN.fullmatch(value) is not None


def _amount_and_unit(value: object) -> tuple[int, str] | None:
    """(amount, alpaca-py unit name) of a valid timeframe, else None."""
    if not isinstance(value, str):
        return None
    match = TIMEFRAME_PATTERN.fullmatch(value)
    if match is None:
        return None
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    valid = {
        "Minute": amount <= 59,
        "Hour": amount <= 23,
        "Day": amount == 1,
        "Week": amount == 1,
        "Month": amount in _MONTH_AMOUNTS,
    }[unit]
    return (amount, unit) if valid else None


def is_timeframe(value: object) -> bool:
    """Whether ``value`` is a timeframe alpaca-py accepts (``5Min`` yes, ``60Min`` and ``2Day`` no)."""
    return _amount_and_unit(value) is not None


def is_daily_timeframe(value: object) -> bool:
    """Whether ``value`` is the one-day timeframe (``1Day`` or ``1D``)."""
    return _amount_and_unit(value) == (1, "Day")


def parse_timeframe(value: str) -> TimeFrame:
    """``'1Day'``, ``'5Min'``, ``'1Hour'``, … as alpaca-py's ``TimeFrame``.

    Raises
    ------
    ValueError
        ``value`` is not a timeframe alpaca-py accepts; the message names it and gives examples.
    """
    parsed = _amount_and_unit(value)
    if parsed is None:
        raise ValueError(
            f"timeframe {value!r} is not one Alpaca serves (1-59Min, 1-23Hour, 1Day, 1Week, "
            "1/2/3/6/12Month; e.g. 1Day, 5Min, 1Hour)"
        )
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    amount, unit = parsed
    return TimeFrame(amount, TimeFrameUnit[unit])
