"""Exceptions of the platform. Each message names the symbol, partition, field or file at fault."""

from __future__ import annotations


class PairsError(Exception):
    """Base class of every error the platform raises on purpose."""


class UniverseError(PairsError, ValueError):
    """The universe file is malformed (bad YAML, missing ``sectors``, bad symbol)."""


class BarsFileError(PairsError, ValueError):
    """A bars file cannot be read or lacks a required column or has unparseable values."""


class BadBarsError(PairsError, ValueError):
    """Bars that violate the contract: duplicates, non-positive or non-finite prices."""


class MissingBarsError(PairsError, LookupError):
    """A symbol or a session has no bars where the partition needs them."""


class InsufficientHistoryError(PairsError, ValueError):
    """A window is shorter than its minimum (typically at the start of history)."""
