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


class PartitionKeyError(PairsError, ValueError):
    """A partition key, or a date given for one, is malformed, names an unknown sector, or lies
    outside the calendar or the data; the message names the key and what is wrong."""


class NotASessionError(PartitionKeyError):
    """A date given as a session (a partition key, ``--as-of``, ``--start``/``--end``) is not an
    NYSE session; the message names the previous and the next session."""


class RunFailedError(PairsError, RuntimeError):
    """A Dagster run the ``pairs`` CLI started failed; the message names the step and its innermost error."""


class RunClosedError(PairsError, RuntimeError):
    """A step tried to record an asset event or register a model after its run was FAILED or CANCELED
    (an orphaned step: its run worker died or was canceled while a Celery worker still executed it);
    the message names the run, its status and what was refused."""


class StepWorkerLostError(PairsError, RuntimeError):
    """A step sent to a Celery worker started there, then its worker stopped reporting for the step
    heartbeat window (killed, its machine lost, or cut off from the database); the message names the
    step, the task, the worker and the window. The run fails instead of waiting for a new worker."""


class EventLogLockedError(PairsError, RuntimeError):
    """The event log's SQLite file stayed locked by another connection past the lock timeout; the
    message names the file and the timeout, and says that nothing of the batch was kept."""
