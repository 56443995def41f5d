"""Features, labels, sequences, the chronological split and the scaler of the GRU reversion model.

Everything here is causal: a value at session ``t`` is computed from sessions ``<= t`` only
(trailing windows, recursive smoothing), except the labels (:func:`entry_event_labels`,
:func:`reversion_labels`), which are targets and look ``horizon`` sessions ahead by definition. Rows whose future is unknown get a NaN label and
never become training examples.

Pure numpy/pandas; no dagster, no resources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.quant.strategy import DEFAULT_STRATEGY

SPREAD_LAGS = (1, 2, 3, 4, 5)
MA_WINDOWS = (5, 20)
RSI_WINDOW = 14
Z_WINDOW = 7
VOL_WINDOW = 20
DEFAULT_MEAN_WINDOW = 20
DEFAULT_REVERSION_FRACTION = 0.5
# The label horizon, the entry rule's levels and the formation window at the strategy's defaults
# (read from the pure model, stated there once); callers pass the strategy's own values.
DEFAULT_HORIZON = DEFAULT_STRATEGY.gru_horizon
DEFAULT_FORMATION_WINDOW = DEFAULT_STRATEGY.formation_window
DEFAULT_ENTRY_Z = DEFAULT_STRATEGY.entry_z
DEFAULT_EXIT_Z = DEFAULT_STRATEGY.exit_z
DEFAULT_STOP_Z = DEFAULT_STRATEGY.stop_z
#: The GRU's targets: ``entry_event`` (:func:`entry_event_labels`, the default: the event the entry
#: rule trades) and ``reversion`` (:func:`reversion_labels`, the seed design's target).
LABELS = ("entry_event", "reversion")

FEATURE_NAMES: tuple[str, ...] = (
    "spread",
    *(f"lag_{k}" for k in SPREAD_LAGS),
    *(f"ma_{w}" for w in MA_WINDOWS),
    f"rsi_{RSI_WINDOW}",
    f"z_{Z_WINDOW}",
    f"vol_{VOL_WINDOW}",
    "garch_sigma",
    "garch_std_resid",
)
Z_FEATURE = f"z_{Z_WINDOW}"

#: Leading rows of :func:`build_features` that are NaN by construction (``vol_20`` needs 20 changes,
#: i.e. 21 levels). GARCH inputs may add their own warm-up (typically one row: a return needs two levels).
FEATURE_WARMUP = VOL_WINDOW


# --- errors ----------------------------------------------------------------------------------------


class GRUTrainingError(PairsError, ValueError):
    """A pair's GRU model cannot be built or trained; the message names the pair and the field.

    The caller skips the pair and records the message as the reason.
    """


class InsufficientSequencesError(GRUTrainingError):
    """Too little history to build the training / validation / test sequence sets."""


class SingleClassError(GRUTrainingError):
    """A slice (train, validation or test) holds labels of a single class only."""


class NaNFeaturesError(GRUTrainingError):
    """A feature is NaN or infinite after its warm-up, or an input series is misaligned."""


class TrainingDivergedError(GRUTrainingError):
    """The training or validation loss became NaN or infinite."""


def pair_prefix(pair_id: str | None) -> str:
    """The start of an error message about a pair.

    Parameters
    ----------
    pair_id : str or None

    Returns
    -------
    str
        ``"pair KO-PEP: "``, or ``""`` without a pair id.
    """
    return f"pair {pair_id}: " if pair_id else ""


def session_label(value: Any) -> str:
    """A session as text.

    Parameters
    ----------
    value : object
        A session (typically a ``pandas.Timestamp``).

    Returns
    -------
    str
        ``YYYY-MM-DD`` for a naive midnight timestamp, else ``str(value)``.
    """
    if isinstance(value, pd.Timestamp) and value.tz is None and value == value.normalize():
        return value.strftime("%Y-%m-%d")
    return str(value)


# --- features --------------------------------------------------------------------------------------


def wilder_rsi(series: pd.Series, window: int = RSI_WINDOW) -> pd.Series:
    """Relative strength index with Wilder's recursive smoothing (alpha = 1/window).

    Parameters
    ----------
    series : pandas.Series
        Levels (any sign: the RSI of a spread uses its changes only).
    window : int, default 14
        Smoothing length; the first ``window`` changes are the warm-up (NaN).

    Returns
    -------
    pandas.Series
        RSI in [0, 100]; 100 when there were no down moves in the smoothed window, 50 when flat.

    References
    ----------
    J. W. Wilder, *New Concepts in Technical Trading Systems* (1978).
    """
    delta = series.diff()
    gain = delta.clip(lower=0.0)
    loss = -delta.clip(upper=0.0)
    avg_gain = gain.ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()
    avg_loss = loss.ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    rsi = rsi.mask((avg_loss == 0) & (avg_gain > 0), 100.0)
    rsi = rsi.mask((avg_loss == 0) & (avg_gain == 0), 50.0)
    return rsi


def _check_series(name: str, series: pd.Series, index: pd.Index | None = None) -> pd.Series:
    if not isinstance(series, pd.Series):
        raise TypeError(f"{name} must be a pandas Series, got {type(series).__name__}")
    if not series.index.is_unique or not series.index.is_monotonic_increasing:
        raise ValueError(f"{name}: index must be unique and increasing (sessions in order)")
    if index is not None and not series.index.equals(index):
        series = series.reindex(index)
    return series.astype("float64")


def build_features(spread: pd.Series, garch_sigma: pd.Series, garch_std_resid: pd.Series) -> pd.DataFrame:
    """The GRU's per-session features, computed from past and current values only.

    - ``spread`` s_t and ``lag_k`` = s_{t-k}, k = 1..5;
    - ``ma_5``, ``ma_20``: trailing means of s over the last 5 / 20 sessions (t included);
    - ``rsi_14``: Wilder RSI of the spread changes (:func:`wilder_rsi`);
    - ``z_7``: (s_t - mean_7) / std_7 over the trailing 7 sessions (sample std);
    - ``vol_20``: sample std of the last 20 spread changes s_t - s_{t-1};
    - ``garch_sigma``, ``garch_std_resid``: passed through.

    The first :data:`FEATURE_WARMUP` rows are NaN by construction. No centred windows, no backward
    fills: changing s after t never changes row t.

    Parameters
    ----------
    spread : pandas.Series
        The pair's spread (``y - hedge_ratio * x - intercept``) indexed by session.
    garch_sigma : pandas.Series
        GARCH(1,1) conditional volatility of the spread changes (re-indexed onto the spread's
        index; a missing session becomes NaN).
    garch_std_resid : pandas.Series
        GARCH standardized residuals, likewise.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``spread``, columns :data:`FEATURE_NAMES`.
    """
    s = _check_series("spread", spread)
    sigma = _check_series("garch_sigma", garch_sigma, s.index)
    resid = _check_series("garch_std_resid", garch_std_resid, s.index)

    columns: dict[str, pd.Series] = {"spread": s}
    for k in SPREAD_LAGS:
        columns[f"lag_{k}"] = s.shift(k)
    for w in MA_WINDOWS:
        columns[f"ma_{w}"] = s.rolling(w, min_periods=w).mean()
    columns[f"rsi_{RSI_WINDOW}"] = wilder_rsi(s, RSI_WINDOW)
    columns[Z_FEATURE] = rolling_zscore(s, Z_WINDOW)
    columns[f"vol_{VOL_WINDOW}"] = s.diff().rolling(VOL_WINDOW, min_periods=VOL_WINDOW).std(ddof=1)
    columns["garch_sigma"] = sigma
    columns["garch_std_resid"] = resid
    frame = pd.DataFrame(columns, index=s.index)
    return frame.loc[:, list(FEATURE_NAMES)]


def _column_windows(values: np.ndarray, window: int, kind: str) -> np.ndarray:
    """pandas' own window kernels on each column of ``values`` ``[T, P]``, as ``Series.rolling(window,
    min_periods=window).mean()`` / ``.std(ddof=1)`` and ``Series.ewm(alpha=1/window, adjust=False,
    min_periods=window).mean()`` call them (same bounds, same inputs: bit for bit their results,
    checked in the tests), without pandas' per-column Python overhead."""
    from pandas._libs.window import aggregations

    n = values.shape[0]
    out = np.empty_like(values)
    if kind == "ewm":
        start, end = np.array([0], dtype=np.int64), np.array([n], dtype=np.int64)
        alpha = 1.0 / window
        com = (1 - alpha) / alpha
    else:
        end = np.clip(np.arange(1, n + 1, dtype="int64"), 0, n)
        start = np.clip(end - window, 0, n)
    with np.errstate(all="ignore"):
        for p in range(values.shape[1]):
            column = np.ascontiguousarray(values[:, p], dtype="float64")
            column = np.where(np.isinf(column), np.nan, column)
            if kind == "mean":
                out[:, p] = aggregations.roll_mean(column, start, end, window)
            elif kind == "std":
                variance = aggregations.roll_var(column, start, end, window, ddof=1)
                out[:, p] = np.where(variance < 0, 0.0, np.sqrt(variance))
            else:
                out[:, p] = aggregations.ewm(column, start, end, window, com, False, False, None, True)
    return out


def build_features_wide(spreads, garch_sigma, garch_std_resid) -> np.ndarray:
    """:func:`build_features` of many pairs at once.

    Column p of the output equals ``build_features`` of column p bit for bit — the same elementwise
    float operations and pandas' own window kernels (checked in the tests) — the signal job's GRU
    input for a whole sector in one pass.

    Parameters
    ----------
    spreads, garch_sigma, garch_std_resid : ndarray or pandas.DataFrame
        ``[n_sessions, n_pairs]``, one column per pair, sessions in order.

    Returns
    -------
    ndarray
        float64, ``[n_pairs, n_sessions, n_features]``.
    """
    s = np.asarray(spreads, dtype="float64")
    sigma = np.asarray(garch_sigma, dtype="float64")
    resid = np.asarray(garch_std_resid, dtype="float64")
    if s.ndim != 2 or sigma.shape != s.shape or resid.shape != s.shape:
        raise ValueError(
            f"build_features_wide: need three [sessions, pairs] arrays of one shape, got {s.shape}, {sigma.shape}, {resid.shape}"
        )

    def shift(a: np.ndarray, k: int) -> np.ndarray:
        out = np.full_like(a, np.nan)
        out[k:] = a[: len(a) - k]
        return out

    with np.errstate(all="ignore"):
        columns: dict[str, np.ndarray] = {"spread": s}
        for k in SPREAD_LAGS:
            columns[f"lag_{k}"] = shift(s, k)
        for w in MA_WINDOWS:
            columns[f"ma_{w}"] = _column_windows(s, w, "mean")
        # wilder_rsi
        delta = s - shift(s, 1)
        nan = np.isnan(delta)
        gain = np.where(nan, np.nan, np.where(delta >= 0.0, delta, 0.0))
        loss = -np.where(nan, np.nan, np.where(delta <= 0.0, delta, 0.0))
        avg_gain = _column_windows(gain, RSI_WINDOW, "ewm")
        avg_loss = _column_windows(loss, RSI_WINDOW, "ewm")
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        rsi = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, rsi)
        columns[f"rsi_{RSI_WINDOW}"] = np.where((avg_loss == 0) & (avg_gain == 0), 50.0, rsi)
        # rolling_zscore
        std = _column_windows(s, Z_WINDOW, "std")
        columns[Z_FEATURE] = (s - _column_windows(s, Z_WINDOW, "mean")) / np.where(std > 0, std, np.nan)
        columns[f"vol_{VOL_WINDOW}"] = _column_windows(delta, VOL_WINDOW, "std")
        columns["garch_sigma"] = sigma
        columns["garch_std_resid"] = resid
    stacked = np.stack([columns[name] for name in FEATURE_NAMES], axis=-1)  # [T, P, F]
    return np.ascontiguousarray(stacked.transpose(1, 0, 2))


def rolling_zscore(series: pd.Series, window: int) -> pd.Series:
    """(s_t - mean) / std over the trailing ``window`` values, t included (sample std; NaN if flat).

    Parameters
    ----------
    series : pandas.Series
    window : int

    Returns
    -------
    pandas.Series

    Notes
    -----
    With t inside its own window, |z| is at most (window - 1) / sqrt(window) — 2.27 for 7 sessions,
    4.25 for 20 — so an entry level of 2 needs a window of about 6 or more to be reachable.
    """
    mean = series.rolling(window, min_periods=window).mean()
    std = series.rolling(window, min_periods=window).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (series - mean) / std.where(std > 0)


def trim_warmup(features: pd.DataFrame, pair_id: str | None = None) -> pd.DataFrame:
    """Drop the leading warm-up rows; any non-finite value after them is an error.

    Parameters
    ----------
    features : pandas.DataFrame
        :func:`build_features`' output.
    pair_id : str, optional
        For error messages.

    Returns
    -------
    pandas.DataFrame
        ``features`` from its first all-finite row on.

    Raises
    ------
    InsufficientSequencesError
        No row is fully finite.
    NaNFeaturesError
        A NaN/inf after the warm-up; the message names the columns and the session.
    """
    finite = np.isfinite(features.to_numpy(dtype="float64"))
    complete = finite.all(axis=1)
    if not complete.any():
        raise InsufficientSequencesError(
            f"{pair_prefix(pair_id)}no session has all {features.shape[1]} features "
            f"({len(features)} sessions; the warm-up alone needs {FEATURE_WARMUP + 1})"
        )
    first = int(np.argmax(complete))
    body = features.iloc[first:]
    bad = ~finite[first:]
    if bad.any():
        bad_cols = [c for c, b in zip(features.columns, bad.any(axis=0)) if b]
        first_bad = session_label(body.index[int(np.argmax(bad.any(axis=1)))])
        raise NaNFeaturesError(
            f"{pair_prefix(pair_id)}feature(s) {', '.join(bad_cols)} NaN or infinite after the warm-up "
            f"(first at session {first_bad}, {int(bad.any(axis=1).sum())} session(s)); "
            "check the spread and GARCH inputs for gaps"
        )
    return body


# --- labels ----------------------------------------------------------------------------------------


def reversion_labels(
    spread: pd.Series,
    horizon: int = DEFAULT_HORIZON,
    mean_window: int = DEFAULT_MEAN_WINDOW,
    reversion_fraction: float = DEFAULT_REVERSION_FRACTION,
) -> pd.Series:
    """Did the spread revert toward its mean within ``horizon`` sessions?

    With m_t the trailing mean of the last ``mean_window`` spread values (s_t included, so known
    at the close of t), d_t = s_t - m_t and f = ``reversion_fraction``::

        label_t = 1  if  sign(d_t) * (s_{t+k} - m_t) <= (1 - f) * |d_t|  for some k in 1..horizon
                  0  otherwise

    i.e. at some close within the next ``horizon`` sessions the spread has moved toward m_t by at
    least the fraction f of its deviation (default: at least halfway); crossing the mean counts.
    The mean is frozen at t (m_t, not m_{t+k}) so the target is a move of the spread, not of its
    average. d_t = 0 (no deviation to revert) gives 0. Closes only: an intraday touch is not seen.

    Parameters
    ----------
    spread : pandas.Series
        Spread levels indexed by session.
    horizon : int, default 5
        Sessions ahead.
    mean_window : int, default 20
        Length of the trailing mean (the ``ma_20`` feature).
    reversion_fraction : float, default 0.5
        Fraction f of the deviation to recover, in (0, 1].

    Returns
    -------
    pandas.Series
        0/1 floats, NaN for the first ``mean_window - 1`` rows (no mean yet) and the last
        ``horizon`` rows (future unknown). NaN rows are never used for training or scoring.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if mean_window < 1:
        raise ValueError(f"mean_window must be >= 1, got {mean_window}")
    if not 0.0 < reversion_fraction <= 1.0:
        raise ValueError(f"reversion_fraction must be in (0, 1], got {reversion_fraction}")
    s = _check_series("spread", spread)
    values = s.to_numpy()
    n = len(values)
    mean = s.rolling(mean_window, min_periods=mean_window).mean().to_numpy()
    deviation = values - mean
    direction = np.sign(deviation)
    target = (1.0 - reversion_fraction) * np.abs(deviation)
    hit = np.zeros(n, dtype=bool)
    for k in range(1, horizon + 1):
        future = np.full(n, np.nan)
        future[: n - k] = values[k:]
        with np.errstate(invalid="ignore"):
            hit |= direction * (future - mean) <= target
    labels = np.where(direction == 0, 0.0, hit.astype("float64"))
    unknown = np.isnan(mean) | np.isnan(values)
    unknown[max(n - horizon, 0) :] = True
    # any NaN in the look-ahead window makes the outcome unknown, not "did not revert"
    for k in range(1, horizon + 1):
        unknown[: n - k] |= np.isnan(values[k:])
    labels[unknown] = np.nan
    return pd.Series(labels, index=s.index, name=f"reverts_{horizon}")


def formation_statistics(spread: pd.Series, formation_window: int = DEFAULT_FORMATION_WINDOW) -> pd.DataFrame:
    """The trading config's spread statistics as they would have been written at each session.

    Parameters
    ----------
    spread : pandas.Series
        Spread levels indexed by session.
    formation_window : int, default DEFAULT_FORMATION_WINDOW
        Sessions of the formation window (t included).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``spread``: ``spread_mean`` (trailing mean of the last ``formation_window``
        spreads, t included) and ``spread_std`` (their sample standard deviation, ddof = 1) — what
        :func:`pairs_assets.quant.stages.build_trading_config` writes for an as-of session t. NaN
        before the window is full.
    """
    if formation_window < 2:
        raise ValueError(f"formation_window must be >= 2, got {formation_window}")
    s = _check_series("spread", spread)
    rolling = s.rolling(formation_window, min_periods=formation_window)
    return pd.DataFrame({"spread_mean": rolling.mean(), "spread_std": rolling.std(ddof=1)}, index=s.index)


def entry_event_labels(
    spread: pd.Series,
    horizon: int = DEFAULT_HORIZON,
    formation_window: int = DEFAULT_FORMATION_WINDOW,
    exit_z: float = DEFAULT_EXIT_Z,
    stop_z: float = DEFAULT_STOP_Z,
    statistics: pd.DataFrame | None = None,
) -> pd.Series:
    """Does the trade the entry rule would open after session t end at its exit, not its stop?

    The trading config written as of t freezes the spread statistics m_t, σ_t of the formation
    window ending at t (:func:`formation_statistics`); the signal job then trades
    z = (s − m_t) / σ_t (:func:`pairs_assets.quant.signals.garch_zscore`) with the config's levels
    exit < entry < stop. With z_{t,k} = (s_{t+k} − m_t) / σ_t the z of the close k sessions later::

        label_t = 1  if  |z_{t,k}| <= exit_z  for some k in 1..horizon
                         and |z_{t,j}| <  stop_z  for every j in 1..k
                  0  otherwise

    i.e. within ``horizon`` sessions the spread's close comes back inside the exit band before it
    closes beyond the stop — the entry rule's winning exit, on the config's own z. A row is
    labelled for every session (an entry at t+1 needs |z| >= entry_z, a condition on t+1 the
    model cannot see at the close of t); :func:`pairs_assets.quant.gru.fit_pair_model` reports
    metrics on the sessions with |z_t| >= entry_z beside the overall ones. Closes only (an intraday
    touch is not seen); the GARCH rescaling of σ in the live z (σ_forecast / σ_∞, about 1 on
    average) is not applied: the label uses the config's ``spread_std``.

    Point in time: label_t uses closes t − formation_window + 1 .. t + horizon and nothing else; the
    last ``horizon`` rows (their future lies after the as-of session) and the first
    ``formation_window − 1`` (no statistics yet) are NaN, as is any row with a NaN close in its
    look-ahead or a flat formation window (σ_t = 0). NaN rows are never used for training or scoring.

    Parameters
    ----------
    spread : pandas.Series
        Spread levels indexed by session (the pair's ``log y − β log x − a``).
    horizon : int, default 5
        Sessions ahead (the strategy's ``gru_horizon``).
    formation_window : int, default DEFAULT_FORMATION_WINDOW
        The strategy's ``formation_window``.
    exit_z, stop_z : float
        The strategy's levels, 0 <= exit_z < stop_z.
    statistics : pandas.DataFrame, optional
        The config's ``spread_mean`` / ``spread_std`` per session when they are not the trailing
        formation window's — e.g. with trading periods (``reselect_every`` > 1) a config carries
        its formation session's statistics through the period: pass those, carried forward, and row
        t is labelled against the config in force after t. Re-indexed onto ``spread``; default
        :func:`formation_statistics` (``formation_window``).

    Returns
    -------
    pandas.Series
        0/1/NaN floats named ``entry_event_<horizon>``.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not (0.0 <= exit_z < stop_z and math.isfinite(stop_z)):
        raise ValueError(f"need 0 <= exit_z < stop_z (finite), got exit_z={exit_z}, stop_z={stop_z}")
    s = _check_series("spread", spread)
    if statistics is None:
        stats = formation_statistics(s, formation_window)
    else:
        missing = {"spread_mean", "spread_std"} - set(statistics.columns)
        if missing:
            raise ValueError(f"statistics lacks column(s) {', '.join(sorted(missing))}")
        stats = statistics.reindex(s.index).astype("float64")
    values = s.to_numpy()
    n = len(values)
    mean = stats["spread_mean"].to_numpy()
    std = stats["spread_std"].to_numpy()
    usable = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    safe_std = np.where(usable, std, 1.0)
    exited = np.zeros(n, dtype=bool)
    stopped = np.zeros(n, dtype=bool)
    unknown = ~usable | np.isnan(values)
    for k in range(1, horizon + 1):
        future = np.full(n, np.nan)
        future[: n - k] = values[k:]
        unknown |= np.isnan(future)
        with np.errstate(invalid="ignore"):
            size = np.abs(future - mean) / safe_std
        stopped |= ~exited & (size >= stop_z)  # a stop before (or without) an exit ends the trade
        exited |= ~stopped & (size <= exit_z)
    labels = exited.astype("float64")
    unknown[max(n - horizon, 0) :] = True
    labels[unknown] = np.nan
    return pd.Series(labels, index=s.index, name=f"entry_event_{horizon}")


def make_labels(
    spread: pd.Series,
    label: str = "entry_event",
    *,
    horizon: int = DEFAULT_HORIZON,
    formation_window: int = DEFAULT_FORMATION_WINDOW,
    exit_z: float = DEFAULT_EXIT_Z,
    stop_z: float = DEFAULT_STOP_Z,
    mean_window: int = DEFAULT_MEAN_WINDOW,
    reversion_fraction: float = DEFAULT_REVERSION_FRACTION,
    statistics: pd.DataFrame | None = None,
) -> pd.Series:
    """The GRU's target by name.

    Parameters
    ----------
    spread : pandas.Series
    label : {"entry_event", "reversion"}, default "entry_event"
        One of :data:`LABELS`.
    horizon, formation_window, exit_z, stop_z, statistics
        As in :func:`entry_event_labels`.
    mean_window, reversion_fraction
        As in :func:`reversion_labels`.

    Returns
    -------
    pandas.Series
        0/1/NaN labels per session.
    """
    if label == "entry_event":
        return entry_event_labels(spread, horizon, formation_window, exit_z, stop_z, statistics)
    if label == "reversion":
        return reversion_labels(spread, horizon, mean_window, reversion_fraction)
    raise ValueError(f"unknown GRU label {label!r} (known: {', '.join(LABELS)})")


# --- sequences and split ---------------------------------------------------------------------------


def make_sequences(
    features: pd.DataFrame, labels: pd.Series, seq_len: int, pair_id: str | None = None
) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Sliding windows of ``seq_len`` consecutive feature rows, each labelled at its last row.

    Parameters
    ----------
    features : pandas.DataFrame
        Finite features (see :func:`trim_warmup`), one row per session, in order.
    labels : pandas.Series
        0/1/NaN per session (re-indexed onto ``features``); a NaN label drops the window.
    seq_len : int
        Rows per window.
    pair_id : str, optional
        For error messages.

    Returns
    -------
    X : ndarray
        float32 ``[n, seq_len, n_features]`` (raw, unscaled); windows step by one session.
    y : ndarray
        float32 ``[n]``.
    sessions : pandas.Index
        The session of each window's last row (its as-of session).

    Raises
    ------
    NaNFeaturesError
        A non-finite feature.
    InsufficientSequencesError
        Fewer rows than ``seq_len`` or no labelled window.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    values = features.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        bad_cols = [c for c, ok in zip(features.columns, np.isfinite(values).all(axis=0)) if not ok]
        raise NaNFeaturesError(
            f"{pair_prefix(pair_id)}feature(s) {', '.join(bad_cols)} NaN or infinite; "
            "trim the warm-up with trim_warmup() first"
        )
    if len(features) < seq_len:
        raise InsufficientSequencesError(
            f"{pair_prefix(pair_id)}{len(features)} usable sessions, fewer than seq_len={seq_len}"
        )
    y_all = labels.reindex(features.index).to_numpy(dtype="float64")
    windows = np.lib.stride_tricks.sliding_window_view(values, seq_len, axis=0)  # [n, F, T]
    windows = np.transpose(windows, (0, 2, 1))
    end_y = y_all[seq_len - 1 :]
    keep = ~np.isnan(end_y)
    if not keep.any():
        raise InsufficientSequencesError(f"{pair_prefix(pair_id)}no labelled sequence (all futures unknown)")
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(windows[keep], dtype=np.float32)
    if not np.isfinite(X).all():
        bad_cols = [c for c, ok in zip(features.columns, np.isfinite(X).all(axis=(0, 1))) if not ok]
        raise NaNFeaturesError(
            f"{pair_prefix(pair_id)}feature(s) {', '.join(bad_cols)} overflow float32 (|value| > 3.4e38)"
        )
    y = end_y[keep].astype(np.float32)
    end_index = features.index[seq_len - 1 :][keep]
    return X, y, end_index


@dataclass(frozen=True)
class ChronologicalSplit:
    """Index ranges of the train / validation / test sequences, in time order, with purge gaps.

    Attributes
    ----------
    train, val, test : range
        Over 0..n-1, in this order.
    purge : int
        Sequences dropped at each boundary.
    """

    train: range
    val: range
    test: range
    purge: int

    def as_dict(self) -> dict[str, int]:
        return {
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self.test),
            "purge": self.purge,
        }


def chronological_split(
    n: int, val_frac: float = 0.2, test_frac: float = 0.2, purge: int = 0, pair_id: str | None = None
) -> ChronologicalSplit:
    """Split ``n`` time-ordered sequences into train, validation and test, dropping ``purge`` at each boundary.

    Purging: a label at t looks at closes t+1..t+horizon. Without a gap, the last training label's
    outcome window overlaps the first validation labels' outcome windows (serially correlated
    targets leak across the boundary). Dropping ``purge = horizon`` sequences between train and
    validation and between validation and test makes every outcome window end before the next
    slice's first labelled session (consecutive sequences assumed: one per session). The fractions
    apply to the ``n - 2 * purge`` sequences that remain; train gets the rest after rounding.

    Parameters
    ----------
    n : int
        Sequences.
    val_frac, test_frac : float, default 0.2
        Fractions of the remaining sequences.
    purge : int, default 0
        Sequences dropped at each boundary.
    pair_id : str, optional
        For error messages.

    Returns
    -------
    ChronologicalSplit
        ``val.start - train.stop == purge`` and ``test.start - val.stop == purge``; no shuffling.

    Raises
    ------
    InsufficientSequencesError
        A slice would be empty.
    """
    if not (0.0 < val_frac < 1.0 and 0.0 < test_frac < 1.0 and val_frac + test_frac < 1.0):
        raise ValueError(f"need 0 < val_frac, test_frac and val_frac + test_frac < 1, got {val_frac}, {test_frac}")
    if purge < 0:
        raise ValueError(f"purge must be >= 0, got {purge}")
    usable = n - 2 * purge
    n_val = int(round(usable * val_frac))
    n_test = int(round(usable * test_frac))
    n_train = usable - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise InsufficientSequencesError(
            f"{pair_prefix(pair_id)}{n} sequences cannot be split into train/validation/test "
            f"({val_frac:.0%} / {test_frac:.0%}) with a purge of {purge} at each boundary"
        )
    train = range(0, n_train)
    val = range(n_train + purge, n_train + purge + n_val)
    test = range(val.stop + purge, val.stop + purge + n_test)
    assert test.stop == n
    return ChronologicalSplit(train=train, val=val, test=test, purge=purge)


def min_sessions_for(
    n_sequences: int,
    seq_len: int = 10,
    horizon: int = DEFAULT_HORIZON,
    garch_warmup: int = 1,
    label_warmup: int = DEFAULT_FORMATION_WINDOW - 1,
) -> int:
    """Sessions of spread history that yield ``n_sequences`` labelled sequences.

    The first labelled window ends at the later of the first full feature window (warm-up rows of
    the features and GARCH, plus ``seq_len - 1``) and the first labelled session (``label_warmup``
    leading rows without a label: ``formation_window - 1`` for the ``entry_event`` label,
    ``mean_window - 1`` for ``reversion``); then ``n_sequences`` and the unlabelled tail of
    ``horizon``. The split then purges ``2 * horizon`` of them.

    Parameters
    ----------
    n_sequences : int
    seq_len : int, default 10
    horizon : int, default 5
    garch_warmup : int, default 1
    label_warmup : int, default DEFAULT_FORMATION_WINDOW - 1
        Leading rows without a label.

    Returns
    -------
    int
        1,256 sessions for 1,000 sequences at the defaults (entry_event, formation window 252);
        1,064 with a 60-session formation window.
    """
    first_end = max(max(FEATURE_WARMUP, garch_warmup) + seq_len - 1, label_warmup)
    return first_end + n_sequences + horizon


# --- scaling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureScaler:
    """Per-feature standardisation (x - mean) / std, fitted on the training slice only.

    Attributes
    ----------
    feature_names : tuple of str
    mean, std : ndarray
        Per feature (population std; a constant feature gets std 1).
    """

    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: pd.DataFrame | np.ndarray, feature_names: tuple[str, ...] | None = None) -> FeatureScaler:
        """Fit on rows ``[n, n_features]`` (population std; a constant feature gets std 1)."""
        if isinstance(rows, pd.DataFrame):
            names = tuple(str(c) for c in rows.columns)
            values = rows.to_numpy(dtype="float64")
        else:
            values = np.asarray(rows, dtype="float64")
            names = (
                tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(values.shape[1]))
            )
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"scaler needs a non-empty 2-D array, got shape {values.shape}")
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(feature_names=names, mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale an array whose last axis is the features (rows or sequences)."""
        return ((np.asarray(x, dtype="float64") - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        return cls(
            feature_names=tuple(data["feature_names"]),
            mean=np.asarray(data["mean"], dtype="float64"),
            std=np.asarray(data["std"], dtype="float64"),
        )
