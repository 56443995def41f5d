"""Small pure helpers every layer shares: UTC timestamps, partition keys, atomic writes, redaction.

One definition each, so that the quant code, the resources, the live path and the assets agree.
No Dagster, SQLAlchemy or platform imports here: the module sits below every layer.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

__all__ = [
    "atomic_write_bytes",
    "redact_text",
    "redact_url",
    "split_partition_key",
    "to_naive_utc",
    "to_utc",
]


# --- UTC ----------------------------------------------------------------------------------------


def to_utc(value: Any) -> pd.Timestamp:
    """A timestamp as a zone-aware UTC ``pd.Timestamp``.

    Parameters
    ----------
    value : str, datetime, numpy.datetime64 or pandas.Timestamp
        Any value ``pd.Timestamp`` accepts. A value without a zone is taken as UTC; a zoned value is
        converted from its own zone.

    Returns
    -------
    pandas.Timestamp
        The same instant, in UTC.
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_naive_utc(value: Any) -> dt.datetime:
    """A timestamp as a naive ``datetime`` in UTC (how the stores keep timestamps).

    Parameters
    ----------
    value : str, datetime, numpy.datetime64 or pandas.Timestamp
        As for :func:`to_utc` (a value without a zone is UTC).

    Returns
    -------
    datetime.datetime
        The UTC wall-clock time of the instant, without ``tzinfo``.
    """
    return to_utc(value).tz_localize(None).to_pydatetime()


# --- partition keys -----------------------------------------------------------------------------


def split_partition_key(key: Any) -> tuple[str, str]:
    """The ``(date, sector)`` of a daily partition key ``DATE|SECTOR``.

    Parameters
    ----------
    key : str or dagster.MultiPartitionKey
        ``2022-12-28|technology``; a ``MultiPartitionKey`` is that string (its dimensions ``date``
        and ``sector`` joined by ``|`` in name order).

    Returns
    -------
    date : str
        ``YYYY-MM-DD`` as written in the key (not validated: ``partitions.check_partition_key``
        checks that it is a session).
    sector : str
        The sector, ``""`` when the key has no ``|``.
    """
    date, _, sector = str(key).partition("|")
    return date, sector


# --- atomic writes ------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to a local ``path`` so that a reader sees the old or the new file, never a part.

    The bytes go to a temporary file in the same folder, which is fsynced and renamed over ``path``;
    on any error the temporary file is removed and ``path`` is left as it was. Missing parent
    folders are created.

    Parameters
    ----------
    path : str or os.PathLike
        The target file (a local file system; object stores write one object atomically anyway).
    payload : bytes
        The file's whole content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- redaction ----------------------------------------------------------------------------------

#: ``scheme://userinfo@`` (the userinfo runs to the last ``@`` before the host's ``/``)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s]*)@")


def _masker(keep_user: bool):
    def mask(match: re.Match) -> str:
        if not keep_user:
            return f"{match['scheme']}***@"
        user, colon, _password = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:***@" if colon else match[0]

    return mask


def redact_url(url: str, *, keep_user: bool = True, keep_query: bool = True) -> str:
    """The URL with its secret hidden, for messages, logs and metadata.

    ``scheme://user:password@host`` becomes ``scheme://user:***@host`` (``scheme://***@host`` without
    ``keep_user``, which also hides a lone token: ``https://token@host``). Works on any string, so a
    malformed URL is never echoed with its password.

    Parameters
    ----------
    url : str
        A database, broker, tracking or data URL.
    keep_user : bool, default True
        False hides the whole userinfo (the MLflow store's URI may carry a token as its user).
    keep_query : bool, default True
        False drops everything after ``?`` (where access tokens often ride).

    Returns
    -------
    str
        The redacted URL.
    """
    redacted = _USERINFO.sub(_masker(keep_user), url)
    return redacted if keep_query else redacted.split("?", 1)[0]


def redact_text(text: str, url: str | None = None, *, keep_user: bool = True) -> str:
    """``text`` (an error message) with every URL's secret masked as in :func:`redact_url`.

    Parameters
    ----------
    text : str
        Free text that may quote URLs.
    url : str, optional
        A URL whose password is also masked where it appears bare in ``text`` (drivers quote it so).
    keep_user : bool, default True
        As for :func:`redact_url`.

    Returns
    -------
    str
        The redacted text.
    """
    text = _USERINFO.sub(_masker(keep_user), text)
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        for secret in sorted({password, unquote(password)}, key=len, reverse=True) if password else ():
            text = text.replace(secret, "***")
    return text
