"""Intraday pair signals: spread, GARCH-scaled z-score, GRU gating, decision, size, correlation drift.

Pure numpy/pandas (and :mod:`pairs_assets.quant.features` / :mod:`pairs_assets.quant.sizing`); no
dagster, no resources. The signal job feeds it one :class:`PairInput` per pair of a trading config.

Formulas (per pair; y the dependent leg, x the independent one, β the hedge ratio, a the intercept):

* **Spread** ``s = ln(P_y) − β·ln(P_x) − a`` at the latest prices (the config's definition).
* **GARCH(1,1) filter** of the spread's session changes ``r_t = s_t − s_{t−1}`` with the config's
  parameters (Bollerslev 1986): ``ε_t = r_t − μ``, ``h_t = ω + α·ε²_{t−1} + β_g·h_{t−1}``, started at
  the unconditional variance ``ω / (1 − α − β_g)`` (the sample variance when ``α + β_g ≥ 1``);
  ``σ_t = √h_t`` and the standardized residual ``ε_t / σ_t`` are the GRU's GARCH features. Checked
  against ``arch``'s fixed-parameter filter in the tests.
* **Z-score on the GARCH forecast**: the spread's level dispersion ``spread_std`` (formation window)
  is rescaled by the volatility regime the GARCH model forecasts for the session,
  ``σ_level = spread_std · σ_forecast / σ_∞`` with ``σ_∞ = √(ω / (1 − α − β_g))`` the unconditional
  σ; then ``z = (s − spread_mean) / σ_level``. In a calm regime (σ_forecast < σ_∞) the bands
  tighten, in a turbulent one they widen. Without a usable σ_∞ (non-stationary fit) the plain
  ``spread_std`` is used and the signal is flagged ``garch_unscaled``.
* **Decision**: the one trading rule (:func:`pairs_assets.quant.rule.step`), applied to the pair's
  state (side, shares, entry, sessions held, stopped flag, terms) and this bar: entries at
  ``entry_z ≤ |z| < stop_z`` if the GRU's reversion probability p reaches the model's threshold
  (no usable model: the entry stands, flagged ``no_gru_gating``; a lower p vetoes it, ``gru_veto``);
  a held pair exits at ``|z| ≤ exit_z`` on its side (or across the mean), stops at ``|z| ≥ stop_z``
  on its side, closes after ``max_holding`` sessions or when dropped from the config
  (``on_drop``); a stopped pair is not re-entered until ``|z| < entry_z``. Confidence: an entry p
  (0.5 ungated), a veto 1 − p, a stop 1, an exit ``0.5 + 0.5·(1 − |z|/exit)`` inside the exit band
  (1 outside it: max holding, a drop, a jump across the mean), a hold ``0.5 + 0.5·d`` (d the
  distance to the nearer of exit/entry as a fraction of half the band, within [0, 1]).
* **Size** (entries): volatility targeting within risk limits, :func:`pairs_assets.quant.sizing.pair_sizing`:
  ``f_y = min(target_daily_vol, max_portfolio_risk / n_pairs) / σ_forecast``, ``f_x = |β|·f_y``,
  both legs scaled down together until each is at most ``max_position``; signed by the direction
  (long spread: +f_y of y, −sign(β)·f_x of x). Exits and stops target zero; holds change nothing.
* **Correlation drift**: Pearson correlation of the two legs' session log returns over the last
  ``drift_window`` sessions; flagged when it falls below the formation correlation by more than
  ``drift_tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.quant import rule
from pairs_assets.quant.cointegration import spread
from pairs_assets.quant.config_model import PairConfig, RiskBlock
from pairs_assets.quant.garch import filter_fixed, unconditional_sigma
from pairs_assets.quant.strategy import DEFAULT_STRATEGY, Strategy

LONG_SPREAD = "long_spread"
SHORT_SPREAD = "short_spread"
EXIT = "exit"
STOP = "stop"
HOLD = "hold"
ACTIONS = (LONG_SPREAD, SHORT_SPREAD, EXIT, STOP, HOLD)
ENTRIES = (LONG_SPREAD, SHORT_SPREAD)

DEFAULT_PROBABILITY_THRESHOLD = 0.5
DEFAULT_DRIFT_WINDOW = 20
#: Sessions of closes the signal job reads for the GRU window, the GARCH filter and the drift check
#: (the signal job's run config default; the walk-forward's GRU gate reads as many)
DEFAULT_HISTORY_SESSIONS = 120
DEFAULT_DRIFT_TOLERANCE = 0.2


class SignalInputError(PairsError, ValueError):
    """A pair's trading-config entry or prices cannot be used; the message names pair and field."""


# --- parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Levels:
    """A pair's z-score levels; ``0 <= exit_z < entry_z < stop_z`` (else :class:`SignalInputError`).

    Attributes
    ----------
    entry_z, exit_z, stop_z : float
        Enter beyond ``entry_z``, exit within ``exit_z``, stop out beyond ``stop_z`` (in |z|).
    """

    entry_z: float
    exit_z: float
    stop_z: float

    def __post_init__(self) -> None:
        if not (0 <= self.exit_z < self.entry_z < self.stop_z):
            raise SignalInputError(
                f"levels need 0 <= exit_z < entry_z < stop_z, got {self.exit_z}, {self.entry_z}, {self.stop_z}"
            )


@dataclass(frozen=True)
class RiskLimits:
    """The risk limits sizing works within (fractions of equity).

    Attributes
    ----------
    max_portfolio_risk : float
        Daily volatility the pairs together may plan (default: the strategy's, 0.05).
    max_position : float
        The largest fraction of equity in either leg (default: the strategy's, 0.10).
    target_daily_vol : float
        A pair's daily volatility target (default: the seed preset's, 0.01; the signal job passes
        the strategy's own).
    """

    max_portfolio_risk: float = DEFAULT_STRATEGY.max_portfolio_risk
    max_position: float = DEFAULT_STRATEGY.max_position
    target_daily_vol: float = Strategy.preset("seed").target_daily_vol

    def tighter(self, other: RiskBlock | None) -> RiskLimits:
        """The tighter of these limits and a config's ``risk`` block (non-positive values ignored)."""
        if other is None:
            return self

        def pick(name: str) -> float:
            value = getattr(other, name)
            mine = getattr(self, name)
            return min(mine, float(value)) if _finite_positive(value) else mine

        return RiskLimits(pick("max_portfolio_risk"), pick("max_position"), pick("target_daily_vol"))


@dataclass(frozen=True)
class GarchParams:
    """A pair's GARCH(1,1) parameters for the spread's daily changes (input units).

    Attributes
    ----------
    mu, omega, alpha, beta : float
        Mean, constant, ARCH and GARCH coefficients.
    sigma_forecast : float
        The one-session σ forecast at the as-of session.
    unconditional_sigma : float, optional
        σ_∞ as the config records it (computed from the parameters when absent).
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    sigma_forecast: float
    unconditional_sigma: float | None = None

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def sigma_infinity(self) -> float:
        """σ_∞ = √(ω / (1 − α − β)) when stationary (or the config's value), else NaN."""
        if _finite_positive(self.unconditional_sigma):
            return float(self.unconditional_sigma)
        return unconditional_sigma(self.omega, self.alpha, self.beta)


@dataclass(frozen=True)
class PairParams:
    """What a signal needs of one pair of a trading config (:meth:`from_pair_config`).

    Attributes
    ----------
    pair_id, y, x : str
        The pair and its legs (y the dependent one).
    hedge_ratio, intercept : float
        The spread ``ln(P_y) − hedge_ratio·ln(P_x) − intercept``.
    spread_mean, spread_std : float
        The formation window's spread mean and standard deviation.
    correlation : float
        The formation correlation (the drift's reference).
    garch : GarchParams
    levels : Levels
    half_life : float, optional
    model_name, model_version : str, optional
        The registered GRU that gates entries (None: no gating).
    probability_threshold : float
        The GRU probability an entry needs.
    model_beats_baselines : bool, optional
    feature_garch : GarchParams, optional
        The GARCH parameters behind the GRU's σ / residual features (None: ``garch``).
    feature_hedge : (float, float), optional
        The GRU's feature spread's hedge ratio and intercept (None: the pair's).
    """

    pair_id: str
    y: str
    x: str
    hedge_ratio: float
    intercept: float
    spread_mean: float
    spread_std: float
    correlation: float
    garch: GarchParams
    levels: Levels
    half_life: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    probability_threshold: float = DEFAULT_PROBABILITY_THRESHOLD
    model_beats_baselines: bool | None = None
    feature_garch: GarchParams | None = None  # the GRU's own GARCH feature parameters (model.feature_garch)
    #: the GRU's feature spread (model.feature_hedge_ratio, model.feature_intercept); None: the pair's own
    feature_hedge: tuple[float, float] | None = None
    #: the config's own leg fractions (``sizing``), used when the pair has no GARCH to size by (a
    #: strategy without one: the walk-forward trades the config's fractions too)
    config_fractions: tuple[float, float] | None = None

    @classmethod
    def from_pair_config(cls, pair: PairConfig) -> PairParams:
        """One pair of a parsed trading config → the signal's parameters.

        Parameters
        ----------
        pair : PairConfig
            An entry of :attr:`TradingConfig.pairs` (parse documents with :meth:`TradingConfig.parse`,
            which refuses unknown schema versions and malformed fields).

        Returns
        -------
        PairParams
            The legs, spread definition and statistics, GARCH parameters, levels and GRU gate.

        Raises
        ------
        SignalInputError
            What the typed model allows but a signal cannot use, naming the pair and the field: a
            GARCH parameter or σ forecast that is null (the fit failed), a non-positive
            ``spread_std``, levels out of order, an incomplete ``model.feature_garch``.
        """
        pair_id = pair.pair_id

        def number(value: float | None, field: str) -> float:
            if value is None:
                raise SignalInputError(f"pair {pair_id}: trading config lacks {field} (null)")
            if not math.isfinite(value):
                raise SignalInputError(f"pair {pair_id}: {field}={value!r} is not finite")
            return float(value)

        def optional(value: float | None, field: str) -> float | None:
            return None if value is None else number(value, field)

        spread_std = number(pair.spread_std, "spread_std")
        if spread_std <= 0:
            raise SignalInputError(f"pair {pair_id}: spread_std={spread_std} must be positive")
        try:
            levels = Levels(
                entry_z=number(pair.levels.entry_z, "levels.entry_z"),
                exit_z=number(pair.levels.exit_z, "levels.exit_z"),
                stop_z=number(pair.levels.stop_z, "levels.stop_z"),
            )
        except SignalInputError as exc:
            raise SignalInputError(f"pair {pair_id}: {exc}") from None
        g = pair.garch
        if all(v is None for v in (g.omega, g.alpha, g.beta, g.sigma_forecast)):
            # a strategy that does not scale by a GARCH (the distance method, a PeriodicStrategy):
            # z against spread_std, as the walk-forward computes it (flagged garch_unscaled)
            garch = GarchParams(mu=0.0, omega=math.nan, alpha=math.nan, beta=math.nan, sigma_forecast=math.nan)
        else:  # a fitted GARCH: every parameter is needed (a null one is a failed fit)
            garch = GarchParams(
                mu=optional(g.mu, "garch.mu") or 0.0,
                omega=number(g.omega, "garch.omega"),
                alpha=number(g.alpha, "garch.alpha"),
                beta=number(g.beta, "garch.beta"),
                sigma_forecast=number(g.sigma_forecast, "garch.sigma_forecast"),
                unconditional_sigma=optional(g.unconditional_sigma, "garch.unconditional_sigma"),
            )
        model = pair.model
        feature_garch = feature_hedge = None
        threshold = DEFAULT_PROBABILITY_THRESHOLD
        if model is not None:
            threshold = _first_not_none(optional(model.probability_threshold, "model.probability_threshold"), threshold)
            f = model.feature_garch
            feature_garch = GarchParams(
                mu=number(f.mu, "model.feature_garch.mu"),
                omega=number(f.omega, "model.feature_garch.omega"),
                alpha=number(f.alpha, "model.feature_garch.alpha"),
                beta=number(f.beta, "model.feature_garch.beta"),
                sigma_forecast=math.nan,
            )
            if model.feature_hedge_ratio is not None:
                feature_hedge = (
                    number(model.feature_hedge_ratio, "model.feature_hedge_ratio"),
                    number(model.feature_intercept, "model.feature_intercept"),
                )
        return cls(
            pair_id=pair_id,
            y=pair.y,
            x=pair.x,
            hedge_ratio=number(pair.hedge_ratio, "hedge_ratio"),
            intercept=number(pair.intercept, "intercept"),
            spread_mean=number(pair.spread_mean, "spread_mean"),
            spread_std=spread_std,
            correlation=_first_not_none(optional(pair.correlation, "correlation"), math.nan),
            half_life=optional(pair.half_life, "half_life"),
            garch=garch,
            levels=levels,
            model_name=model.name if model is not None and model.name else None,
            model_version=model.version if model is not None else None,
            probability_threshold=threshold,
            model_beats_baselines=None if model is None else model.beats_baselines,
            feature_garch=feature_garch,
            config_fractions=_config_fractions(pair),
            feature_hedge=feature_hedge,
        )


def _first_not_none(*values):
    for value in values:
        if value is not None:
            return value
    return None


def _finite_positive(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


# --- the math ------------------------------------------------------------------------------------


def _config_fractions(pair: PairConfig) -> tuple[float, float] | None:
    """The config's ``sizing`` leg fractions when both are finite and positive, else None."""
    sizing = getattr(pair, "sizing", None)
    y, x = (
        (getattr(sizing, "y_fraction", None), getattr(sizing, "x_fraction", None))
        if sizing is not None
        else (None, None)
    )
    if y is None or x is None or not (_finite_positive(y) and _finite_positive(x)):
        return None
    return float(y), float(x)


def garch_filter_fixed(changes: np.ndarray, garch: GarchParams) -> tuple[np.ndarray, np.ndarray]:
    """Conditional σ_t and standardized residuals of ``changes`` under the pair's fixed parameters.

    The same recursion as the GRU's training features (:func:`pairs_assets.quant.garch.filter_fixed`);
    :func:`pairs_assets.quant.garch.garch_filter` is the one that fits the parameters first.

    Parameters
    ----------
    changes : ndarray
        The spread's session changes (NaN allowed: the recursion carries over a gap).
    garch : GarchParams

    Returns
    -------
    sigma : ndarray
        Conditional σ_t, one per change.
    resid : ndarray
        ``(r_t − μ) / σ_t``.
    """
    return filter_fixed(
        changes, mu=garch.mu, omega=garch.omega, alpha=garch.alpha, beta=garch.beta, fallback_sigma=garch.sigma_forecast
    )


def garch_zscore(
    spread_value: float, spread_mean: float, spread_std: float, garch: GarchParams
) -> tuple[float, float, bool]:
    """The spread's z-score against the GARCH-scaled level dispersion (see the module docstring).

    Parameters
    ----------
    spread_value, spread_mean, spread_std : float
        The current spread and the formation window's mean and standard deviation.
    garch : GarchParams

    Returns
    -------
    z : float
        ``(spread_value − spread_mean) / σ_level``.
    sigma_level : float
        ``spread_std · σ_forecast / σ_∞``, or ``spread_std`` when unscaled.
    scaled : bool
        False when σ_∞ or σ_forecast is unusable (the signal is flagged ``garch_unscaled``).
    """
    sigma_inf = garch.sigma_infinity
    scaled = _finite_positive(sigma_inf) and _finite_positive(garch.sigma_forecast)
    level = spread_std * garch.sigma_forecast / sigma_inf if scaled else spread_std
    return (spread_value - spread_mean) / level, level, scaled


def confidence(
    action: str, z: float, levels: Levels, probability: float | None, vetoed: bool = False
) -> tuple[float, tuple[str, ...]]:
    """The confidence of a rule step's action and its flags (formulas in the module docstring).

    Parameters
    ----------
    action : str
        One of :data:`ACTIONS`.
    z : float
    levels : Levels
    probability : float or None
        The GRU's probability (None or NaN: ungated).
    vetoed : bool, default False
        The GRU gate refused an entry on this bar.

    Returns
    -------
    (float, tuple of str)
        The confidence in [0, 1] and the flags ``no_zscore``, ``no_gru_gating``, ``gru_veto``.
    """
    if z is None or not math.isfinite(z):
        return (1.0 if action in (EXIT, STOP) else 0.0), ("no_zscore",)
    gated = probability is not None and math.isfinite(probability)
    size = abs(z)
    if action in ENTRIES:
        return (float(probability), ()) if gated else (0.5, ("no_gru_gating",))
    if vetoed:
        return float(1 - probability), ("gru_veto",)
    if action == STOP:
        return 1.0, ()
    if action == EXIT:
        if size > levels.exit_z:
            return 1.0, ()
        return (1.0 if levels.exit_z == 0 else 0.5 + 0.5 * (1 - size / levels.exit_z)), ()
    half_band = (levels.entry_z - levels.exit_z) / 2
    distance = min(size - levels.exit_z, levels.entry_z - size) / half_band
    return 0.5 + 0.5 * min(1.0, max(0.0, distance)), ()


def target_position(action: str, hedge_ratio: float, sizing: Mapping[str, float]) -> tuple[float | None, float | None]:
    """Signed target fractions of equity of the two legs.

    Parameters
    ----------
    action : str
        The decision's action.
    hedge_ratio : float
    sizing : mapping
        :func:`pairs_assets.quant.sizing.pair_sizing`'s output.

    Returns
    -------
    y, x : float or None
        Entries per ``sizing`` (long spread: +y, −sign(β)·x), exits and stops 0, holds None.
    """
    if action in (EXIT, STOP):
        return 0.0, 0.0
    if action not in ENTRIES:
        return None, None
    return rule.target_weights(1 if action == LONG_SPREAD else -1, hedge_ratio, sizing)


def correlation_drift(
    closes_y: np.ndarray,
    closes_x: np.ndarray,
    reference: float,
    window: int = DEFAULT_DRIFT_WINDOW,
    tolerance: float = DEFAULT_DRIFT_TOLERANCE,
) -> tuple[float, bool | None]:
    """The legs' recent correlation of log returns, and whether it drifted from the formation's.

    Parameters
    ----------
    closes_y, closes_x : ndarray
        Session closes of the legs, oldest first.
    reference : float
        The formation correlation.
    window : int, default 20
        Sessions of returns.
    tolerance : float, default 0.2
        Drift is a fall below ``reference`` by more than this.

    Returns
    -------
    correlation : float
        NaN when unknown.
    drifted : bool or None
        None when unknown (too short, a constant leg).
    """
    # only the last window of returns is used: log and difference the last window + 1 closes
    y = np.log(np.asarray(closes_y, dtype="float64")[-(window + 1) :])
    x = np.log(np.asarray(closes_x, dtype="float64")[-(window + 1) :])
    ry, rx = np.diff(y), np.diff(x)
    ok = np.isfinite(ry) & np.isfinite(rx)
    if not ok.all():
        ry, rx = ry[ok], rx[ok]
    if len(ry) < max(3, window // 2) or not math.isfinite(reference):
        return math.nan, None
    # Pearson's r from the centred sums (np.corrcoef's value, without its general-purpose overhead:
    # the signal job calls this per pair per bar); a constant leg has no correlation
    dy, dx = ry - ry.mean(), rx - rx.mean()
    syy, sxx = float(dy @ dy), float(dx @ dx)
    if syy == 0.0 or sxx == 0.0:
        return math.nan, None
    recent = max(-1.0, min(1.0, float(dy @ dx) / math.sqrt(syy * sxx)))
    return recent, bool(recent < reference - tolerance)


# --- one pair ------------------------------------------------------------------------------------


@dataclass
class PairInput:
    """A pair's parameters and prices: session closes up to the as-of session, and the latest prices.

    Attributes
    ----------
    params : PairParams
    history : pandas.DataFrame
        Indexed by session (increasing), columns ``y`` and ``x`` (closes).
    latest_y, latest_x : float or None
        The latest prices after the as-of close (None: none arrived).
    bar_timestamp : pandas.Timestamp
        The time the signal refers to (the later of the two legs' latest bars).
    flags : list of str
        Flags gathered while reading the prices.
    """

    params: PairParams
    history: pd.DataFrame
    latest_y: float | None
    latest_x: float | None
    bar_timestamp: pd.Timestamp
    flags: list[str] = field(default_factory=list)

    def session_spreads(self) -> pd.Series:
        """Session-close spreads up to the as-of session (indexed like ``history``): the GRU's input rows."""
        p = self.params
        hist = spread(self.history["y"].to_numpy(float), self.history["x"].to_numpy(float), p.hedge_ratio, p.intercept)
        return pd.Series(np.asarray(hist, dtype="float64"), index=self.history.index, name=p.pair_id)

    def gru_spreads(self) -> pd.Series:
        """Session-close spreads of the GRU's own feature spread (``feature_hedge``; the pair's spread
        when the model has none): the series its features were built on in training."""
        p = self.params
        if p.feature_hedge is None:
            return self.session_spreads()
        hedge, intercept = p.feature_hedge
        hist = spread(self.history["y"].to_numpy(float), self.history["x"].to_numpy(float), hedge, intercept)
        return pd.Series(np.asarray(hist, dtype="float64"), index=self.history.index, name=p.pair_id)

    def spread_path(self) -> pd.Series:
        """Session spreads up to the as-of session, plus the current spread (if any) as a last row.

        For looking at, not for the GRU: its last row is an intraday price, not a session close
        (:func:`gru_sequence` uses :meth:`session_spreads`).
        """
        p = self.params
        values = list(self.session_spreads())
        if self.latest_y is not None and self.latest_x is not None:
            values.append(float(spread(self.latest_y, self.latest_x, p.hedge_ratio, p.intercept)))
        return pd.Series(values, index=pd.RangeIndex(len(values)), dtype="float64", name=p.pair_id)

    def current_prices(self) -> tuple[float, float]:
        y = self.latest_y if self.latest_y is not None else float(self.history["y"].iloc[-1])
        x = self.latest_x if self.latest_x is not None else float(self.history["x"].iloc[-1])
        return y, x


def gru_sequence(pair: PairInput, seq_len: int) -> np.ndarray:
    """The GRU's input ``[seq_len, n_features]`` (raw features, float32) ending at the as-of session.

    Built exactly as in training (:func:`pairs_assets.quant.gru.fit_pair_model`): daily features of
    the session-close spreads of the model's feature spread (:meth:`PairInput.gru_spreads`), the
    GARCH features filtered with the model's own ``feature_garch`` parameters. The current intraday
    price is *not* appended as a session row — the model never saw a partial session — so the
    probability is the model's prediction at the as-of close, the same for every bar of the trading
    session; the intraday price enters the decision through z only. Rows equal the training
    features' rows for the same sessions when ``history`` starts where the training window starts
    (the recursive features — RSI, GARCH σ — forget their start-up like (13/14)^t and β^t otherwise).

    Parameters
    ----------
    pair : PairInput
    seq_len : int
        The model's sequence length.

    Returns
    -------
    ndarray
        float32, shape ``(seq_len, n_features)``.

    Raises
    ------
    SignalInputError
        The history is too short or a feature is not finite.
    """
    from pairs_assets.quant.features import build_features

    s = pair.gru_spreads()
    # the same GARCH parameters the model's features were built with in training, when the config has them
    sigma, resid = garch_filter_fixed(s.diff().to_numpy(), pair.params.feature_garch or pair.params.garch)
    features = build_features(s, pd.Series(sigma, index=s.index), pd.Series(resid, index=s.index))
    tail = features.tail(seq_len).to_numpy(dtype="float64")
    if len(tail) < seq_len or not np.isfinite(tail).all():
        raise SignalInputError(
            f"pair {pair.params.pair_id}: {len(s)} sessions of spread give no complete GRU window of "
            f"{seq_len} (features need a warm-up; read more history)"
        )
    return tail.astype(np.float32)


def gru_sequences(pairs: Sequence[PairInput], seq_len: int) -> list[np.ndarray | SignalInputError]:
    """:func:`gru_sequence` of many pairs at once, bit for bit.

    Pairs whose session histories share an index are filtered
    (:func:`pairs_assets.quant.garch.filter_fixed_many`) and featurised
    (:func:`pairs_assets.quant.features.build_features_wide`) together: a sector's GRU inputs in a
    few vectorised passes instead of one pandas pipeline per pair.

    Parameters
    ----------
    pairs : sequence of PairInput
    seq_len : int

    Returns
    -------
    list
        Per pair its float32 ``[seq_len, n_features]`` input, or the :class:`SignalInputError`
        :func:`gru_sequence` would raise.
    """
    from pairs_assets.quant.features import build_features_wide
    from pairs_assets.quant.garch import filter_fixed_many

    out: list[np.ndarray | SignalInputError | None] = [None] * len(pairs)
    groups: list[tuple[pd.Index, list[int]]] = []
    for i, pair in enumerate(pairs):
        index = pair.history.index
        for ref, members in groups:
            if ref.equals(index):
                members.append(i)
                break
        else:
            groups.append((index, [i]))
    for index, members in groups:
        spreads = np.stack([pair.gru_spreads().to_numpy() for pair in (pairs[i] for i in members)])  # [P, n]
        changes = np.diff(spreads, axis=1, prepend=np.nan)
        garch = [pairs[i].params.feature_garch or pairs[i].params.garch for i in members]
        sigma, resid = filter_fixed_many(
            changes,
            mu=[g.mu for g in garch],
            omega=[g.omega for g in garch],
            alpha=[g.alpha for g in garch],
            beta=[g.beta for g in garch],
            fallback_sigma=[g.sigma_forecast for g in garch],
        )
        features = build_features_wide(spreads.T, sigma.T, resid.T)
        tails = features[:, -seq_len:, :]
        for k, i in enumerate(members):
            tail = tails[k]
            if len(tail) < seq_len or not np.isfinite(tail).all():
                out[i] = SignalInputError(
                    f"pair {pairs[i].params.pair_id}: {len(index)} sessions of spread give no complete GRU window of "
                    f"{seq_len} (features need a warm-up; read more history)"
                )
            else:
                out[i] = tail.astype(np.float32)
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class PairSignal:
    """One pair's signal at one bar: a row of the ``trading_signals`` table (:meth:`as_row`).

    Attributes
    ----------
    pair_id, y, x : str
    bar_timestamp : pandas.Timestamp
    price_y, price_x : float
        The latest prices.
    spread, zscore, sigma_level : float
        See :func:`garch_zscore`.
    gru_probability : float or None
    action : str
    confidence : float
    position_y, position_x : float or None
        Target fractions of equity (:func:`target_position`).
    gross_fraction : float or None
    correlation, recent_correlation : float
        The formation correlation and the recent one (:func:`correlation_drift`).
    correlation_drift : bool or None
    flags : tuple of str
    """

    pair_id: str
    y: str
    x: str
    bar_timestamp: pd.Timestamp
    price_y: float
    price_x: float
    spread: float
    zscore: float
    sigma_level: float
    gru_probability: float | None
    action: str
    confidence: float
    position_y: float | None
    position_x: float | None
    gross_fraction: float | None
    correlation: float
    recent_correlation: float
    correlation_drift: bool | None
    flags: tuple[str, ...]
    #: the pair's state after this bar (:class:`pairs_assets.quant.rule.PairState`)
    state: rule.PairState | None = None
    #: why a held position closed at this bar (``exit``, ``stop``, ``max_holding``, ``config_drop``)
    exit_reason: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "pair_id": self.pair_id,
            "bar_timestamp": self.bar_timestamp,
            "spread": self.spread,
            "zscore": self.zscore,
            "gru_probability": self.gru_probability,
            "action": self.action,
            "confidence": self.confidence,
            "position_y": self.position_y,
            "position_x": self.position_x,
            "gross_fraction": self.gross_fraction,
            "correlation_drift": self.correlation_drift,
            "flags": ",".join(self.flags),
        }


def compute_pair_signal(
    pair: PairInput,
    probability: float | None,
    limits: RiskLimits,
    n_pairs: int,
    *,
    drift_window: int = DEFAULT_DRIFT_WINDOW,
    drift_tolerance: float = DEFAULT_DRIFT_TOLERANCE,
    gating_flags: Sequence[str] = (),
    state: rule.PairState | None = None,
    listed: bool = True,
    terms: Any = None,
    session: str | None = None,
    ordinal: int = 0,
    on_drop: str = rule.DEFAULT_ON_DROP,
    max_holding: int = rule.DEFAULT_MAX_HOLDING,
) -> PairSignal:
    """Spread → z → size → the trading rule's step on the pair's state → drift, for one pair at one bar.

    Parameters
    ----------
    pair : PairInput
    probability : float or None
        The GRU's probability at the as-of close (None: no gating).
    limits : RiskLimits
    n_pairs : int
        Pairs of the config (they share the portfolio risk).
    drift_window : int, default 20
    drift_tolerance : float, default 0.2
        As in :func:`correlation_drift`.
    gating_flags : sequence of str, optional
        Flags explaining a missing probability (e.g. no model).
    state : PairState, optional
        The pair's state before this bar (None: flat, never traded).
    listed : bool, default True
        Today's config lists the pair; False: a held pair dropped from it (its ``pair.params`` are
        the last config's), handled by ``on_drop``.
    terms : object, optional
        What the state keeps as the pair's terms (the config's pair entry); None: ``pair.params``.
    session : str, optional
        The bar's exchange session (ISO date; default: the bar's UTC date).
    ordinal : int, default 0
        The session's exchange-session ordinal (``max_holding`` counts sessions by it).
    on_drop, max_holding
        As in :func:`pairs_assets.quant.rule.step`.

    Returns
    -------
    PairSignal
        With the new ``state``.

    Raises
    ------
    SignalInputError
        A non-positive or non-finite price (naming the pair and symbol).
    RuleInputError
        The state and the config disagree on the legs, or the bar is older than the state's last.
    """
    from pairs_assets.quant.sizing import pair_sizing

    p = pair.params
    price_y, price_x = pair.current_prices()
    for leg, price in (("y", price_y), ("x", price_x)):
        if not _finite_positive(price):
            symbol = p.y if leg == "y" else p.x
            raise SignalInputError(f"pair {p.pair_id}: price of {symbol} is {price}, not positive and finite")
    s = float(spread(price_y, price_x, p.hedge_ratio, p.intercept))
    z, level, scaled = garch_zscore(s, p.spread_mean, p.spread_std, p.garch)
    flags = list(pair.flags) + list(gating_flags)
    if not scaled:
        flags.append("garch_unscaled")
    if not _finite_positive(p.garch.sigma_forecast) and p.config_fractions is not None:
        # no GARCH to size by (a strategy without one): the config's fractions, as the walk-forward
        # trades them, scaled down together so neither leg exceeds the account's max_position
        y_fraction, x_fraction = p.config_fractions
        scale = min(1.0, limits.max_position / max(y_fraction, x_fraction))
        sizing = {
            "y_fraction": y_fraction * scale,
            "x_fraction": x_fraction * scale,
            "gross_fraction": (y_fraction + x_fraction) * scale,
            "pair_vol_target": math.nan,
            "expected_daily_vol": math.nan,
        }
    else:
        sizing = pair_sizing(
            sigma_forecast=p.garch.sigma_forecast,
            hedge_ratio=p.hedge_ratio,
            target_daily_vol=limits.target_daily_vol,
            max_position=limits.max_position,
            max_portfolio_risk=limits.max_portfolio_risk,
            n_pairs=max(1, n_pairs),
        )
    before = state if state is not None else rule.PairState.flat(p.pair_id, p.y, p.x)
    bar = pd.Timestamp(pair.bar_timestamp)
    obs = rule.Observation(
        bar,
        session if session is not None else str(bar.date()),
        ordinal,
        float(z),
        (terms if terms is not None else p) if listed else None,
        sigma=float(level),
        sizing=sizing,
        probability=probability,
        threshold=p.probability_threshold,
    )
    after, done = rule.step(before, obs, on_drop=on_drop, max_holding=max_holding)
    action = rule.step_action(done, after)
    conf, decision_flags = confidence(action, float(z), p.levels, probability, vetoed=done.vetoed)
    flags.extend(decision_flags)
    if done.repeated:
        flags.append("bar_already_applied")
    if not listed:
        flags.append("not_in_config")
    if done.exit_reason in (rule.MAX_HOLDING, rule.CONFIG_DROP):
        flags.append(done.exit_reason)
    if action == HOLD and after.side == 0 and after.stopped:
        flags.append("stopped")
    if action in ENTRIES:
        pos_y, pos_x = after.weight_y, after.weight_x
    elif action in (EXIT, STOP):
        pos_y, pos_x = 0.0, 0.0
    else:
        pos_y = pos_x = None
    # the drift check reads the last drift_window returns: the last drift_window + 1 closes are enough
    tail = drift_window + 1
    closes_y = pair.history["y"].to_numpy(float)[-tail:]
    closes_x = pair.history["x"].to_numpy(float)[-tail:]
    if pair.latest_y is not None:
        closes_y = np.append(closes_y, pair.latest_y)
    if pair.latest_x is not None:
        closes_x = np.append(closes_x, pair.latest_x)
    recent, drifted = correlation_drift(closes_y, closes_x, p.correlation, drift_window, drift_tolerance)
    if drifted is None:
        flags.append("drift_unknown")
    elif drifted:
        flags.append("correlation_drift")
    return PairSignal(
        pair_id=p.pair_id,
        y=p.y,
        x=p.x,
        bar_timestamp=pair.bar_timestamp,
        price_y=price_y,
        price_x=price_x,
        spread=s,
        zscore=float(z),
        sigma_level=float(level),
        gru_probability=None if probability is None else float(probability),
        action=action,
        confidence=float(conf),
        position_y=pos_y,
        position_x=pos_x,
        gross_fraction=None if pos_y is None else abs(pos_y) + abs(pos_x),
        correlation=p.correlation,
        recent_correlation=recent,
        correlation_drift=drifted,
        flags=tuple(dict.fromkeys(flags)),
        state=after,
        exit_reason=done.exit_reason,
    )


# --- orders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderIntent:
    """One leg's order: buy or sell ``qty`` whole shares of ``symbol`` at about ``reference_price``.

    Attributes
    ----------
    pair_id : str
    leg : {"y", "x"}
    symbol : str
    side : {"buy", "sell"}
    qty : float
        Shares to trade (positive).
    reference_price : float
    target_qty : float
        The signed position the order moves to.
    """

    pair_id: str
    leg: str  # "y" or "x"
    symbol: str
    side: str  # "buy" or "sell"
    qty: float
    reference_price: float
    target_qty: float


def order_intents(
    signal: PairSignal, equity: float, current_qty: Mapping[str, float], *, min_qty: float = 1.0
) -> list[OrderIntent]:
    """The two legs' orders that move the pair from ``current_qty`` to the signal's target.

    Target shares = round(fraction · equity / price); an order is the difference (at least
    ``min_qty``). Holds give no orders; an entry while already positioned the same way gives none
    (no resizing on every bar).

    Parameters
    ----------
    signal : PairSignal
    equity : float
    current_qty : mapping
        ``{"y": shares, "x": shares}`` held now.
    min_qty : float, default 1.0
        Smaller differences give no order.

    Returns
    -------
    list of OrderIntent
    """
    if signal.position_y is None or signal.position_x is None:
        return []
    if not _finite_positive(equity):
        raise SignalInputError(f"pair {signal.pair_id}: equity {equity} must be positive")
    current_y, current_x = float(current_qty.get("y", 0.0)), float(current_qty.get("x", 0.0))
    if signal.action in ENTRIES and current_y != 0 and np.sign(current_y) == np.sign(signal.position_y):
        return []
    intents = []
    for leg, symbol, fraction, price, current in (
        ("y", signal.y, signal.position_y, signal.price_y, current_y),
        ("x", signal.x, signal.position_x, signal.price_x, current_x),
    ):
        target = float(round(fraction * equity / price))
        delta = target - current
        if abs(delta) < min_qty:
            continue
        intents.append(
            OrderIntent(
                pair_id=signal.pair_id,
                leg=leg,
                symbol=symbol,
                side="buy" if delta > 0 else "sell",
                qty=abs(delta),
                reference_price=price,
                target_qty=target,
            )
        )
    return intents
