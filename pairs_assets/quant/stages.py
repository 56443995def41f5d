"""The daily graph's stage logic as pure functions: one implementation for the assets and the walk-forward.

Each function takes the closes window its stage reads (sessions × symbols, ending at the as-of
session) and the strategy settings (any object with the fields of
:class:`pairs_assets.settings.StrategySettings`), and returns exactly what the asset stores. The
Dagster assets read the window from the market data store and call these; the walk-forward slices
the same windows from one in-memory panel and calls them too, so replaying 30 years and
materializing one partition cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pairs_assets.quant import rule
from pairs_assets.quant.backtest import recent_backtest
from pairs_assets.quant.cointegration import CointegrationResult, find_cointegrated_pairs, spread
from pairs_assets.quant.config_model import SCHEMA_VERSION, TradingConfig
from pairs_assets.quant.correlation import correlation_long
from pairs_assets.quant.garch import fit_garch, unconditional_sigma
from pairs_assets.quant.prices import find_unusable_symbols
from pairs_assets.quant.scoring import forecast_score, score_models
from pairs_assets.quant.sizing import pair_sizing
from pairs_assets.quant.strategy import Strategy

if TYPE_CHECKING:  # torch is imported only where a GRU is trained
    from pairs_assets.quant.gru import GRUConfig

__all__ = [
    "BACKTEST_COLUMNS",
    "FORMATION_EPOCH",
    "FormationSchedule",
    "GARCH_COLUMNS",
    "GARCH_ESTIMATORS",
    "GARCH_MIN_OBS",
    "CorrelationStage",
    "build_trading_config",
    "cointegration_stage",
    "correlation_stage",
    "empty_garch_frame",
    "garch_features",
    "garch_series",
    "garch_stage",
    "garch_stage_many",
    "gru_config",
    "gru_stage_fit",
    "gru_stage_fit_many",
    "gru_stage_inputs",
    "gru_hedge",
    "period_statistics",
    "feature_columns",
    "feature_hedge",
    "GRU_TRAINING",
    "pair_spread",
    "selection_stage",
    "sigma_forecasts_at",
    "causal_spread_changes",
    "spread_returns",
]

GARCH_COLUMNS = [
    "pair_id",
    "mu",
    "omega",
    "alpha",
    "beta",
    "persistence",
    "loglik",
    "aic",
    "bic",
    "sigma_forecast",
    "forecast_score",
    "ljung_box_p",
    "arch_lm_p",
    "converged",
    "n_obs",
    # beyond the contract: what the scores and the trading side need
    "aic_constant",
    "bic_constant",
    "qlike_garch",
    "qlike_naive",
    "forecast_ratio",
    "unconditional_sigma",
    "convergence_message",
    "scale",
    # which code produced the fit: "batched" (quant.garch.fit_garch_many), "arch" (its recorded
    # fallback, or estimator="arch"), "<full-sample>/<training>" when the two fits differ
    "estimator",
]
BACKTEST_COLUMNS = ["pair_id", "sharpe", "total_return", "n_trades", "hit_rate", "max_drawdown"]
#: Fewest spread returns a GARCH(1,1) is fitted on (the StrategySettings garch_window minimum).
GARCH_MIN_OBS = 500


#: The session the formation calendar counts from: the NYSE's first session of 1990 (the first
#: session of the embedded history, and the epoch of the baseline's trading periods and of the
#: signal job's session ordinals). A fixed exchange date, not a data setting.
FORMATION_EPOCH = "1990-01-02"


@dataclass(frozen=True)
class FormationSchedule:
    """Which session a partition's stages run at: every ``every``-th exchange session counted from a
    fixed epoch session (:data:`FORMATION_EPOCH`), shifted by ``phase``.

    Number the sessions n = 0, 1, 2, … from the epoch (negative before it). The formation sessions
    are those with (n − phase) mod every = 0, and the formation session of an as-of session n is
    n − ((n − phase) mod every): a fixed schedule that depends on the exchange calendar alone — never
    on the history start (``PAIRS_HISTORY_START``, a data setting), on the range a walk-forward
    runs, or on earlier runs. The walk-forward and the daily graph use this one schedule.

    Why a fixed epoch and not month starts: a calendar month holds 19–23 sessions, so month starts
    cannot express any ``reselect_every`` but ≈ 21 (the 10- and 42-session neighbours of the
    robustness study, or the seed's 1); blocks of ``every`` sessions from one epoch keep the setting's
    meaning exactly for every value. The epoch is the embedded history's first session (so the
    default home's schedule is the one it always had: the history started there) and the same date
    the baseline's 126-session periods count from. Which of the ``every`` phases is used is a
    strategy setting (``formation_phase``, 0 by default), so each phase a study runs is a recorded,
    counted trial; ``pairs walk-forward --robustness`` reports all of them.

    Attributes
    ----------
    sessions : pandas.DatetimeIndex
        Consecutive exchange sessions (tz-naive dates) holding the epoch, or starting on a formation
        session before it, through the last as-of session asked about
        (:func:`pairs_assets.partitions.formation_schedule` builds them).
    every : int, default 1
        1: every session is its own formation.
    phase : int, default 0
        0 ≤ phase < every: the formation sessions are the epoch's block shifted by this many sessions.
    epoch : str or Timestamp
    """

    sessions: pd.DatetimeIndex
    every: int = 1
    phase: int = 0
    epoch: str | pd.Timestamp = FORMATION_EPOCH

    def __post_init__(self) -> None:
        if self.every < 1 or not 0 <= self.phase < max(self.every, 1):
            raise ValueError(
                f"formation schedule: need every >= 1 and 0 <= phase < every, got every={self.every}, phase={self.phase}"
            )

    def _epoch_position(self) -> int:
        epoch = pd.Timestamp(self.epoch)
        if len(self.sessions) and self.sessions[0] <= epoch:
            return int(self.sessions.get_loc(epoch))
        raise ValueError(
            f"formation schedule: the calendar starts {self.sessions[0].date() if len(self.sessions) else '(empty)'}, "
            f"after the epoch {epoch.date()}; pass sessions from the epoch on (partitions.formation_schedule)"
        )

    def __call__(self, as_of) -> pd.Timestamp:
        as_of = pd.Timestamp(as_of)
        if self.every == 1:
            return as_of
        i = int(self.sessions.get_loc(as_of))
        n = i - self._epoch_position()
        f = i - (n - self.phase) % self.every
        if f < 0:
            raise ValueError(
                f"formation schedule: the formation session of {as_of.date()} precedes the calendar given "
                f"(from {self.sessions[0].date()})"
            )
        return self.sessions[f]


@dataclass(frozen=True)
class CorrelationStage:
    """correlation_matrix's output and what it excluded.

    Attributes
    ----------
    matrix : pandas.DataFrame
        :func:`~pairs_assets.quant.correlation.correlation_long` of the usable symbols.
    excluded : dict of str to str
        Unusable symbols with the reason.
    usable : list of str
    """

    matrix: pd.DataFrame
    excluded: dict[str, str]
    usable: list[str]


def correlation_stage(closes: pd.DataFrame, strategy: Strategy) -> CorrelationStage:
    """Log-return correlations of the usable symbols of a formation window (``correlation_matrix``).

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions × symbols of the formation window.
    strategy : Strategy

    Returns
    -------
    CorrelationStage
    """
    excluded = find_unusable_symbols(closes, max_flat_fraction=strategy.max_flat_fraction)
    usable = [s for s in closes.columns if s not in excluded]
    return CorrelationStage(matrix=correlation_long(closes[usable]), excluded=excluded, usable=usable)


def cointegration_stage(
    closes: pd.DataFrame, correlation_matrix: pd.DataFrame, strategy: Strategy
) -> tuple[CointegrationResult, pd.DataFrame]:
    """Engle-Granger screen of the correlated pairs of a formation window (``cointegrated_pairs``).

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions × symbols of the formation window.
    correlation_matrix : pandas.DataFrame
        :func:`correlation_stage`'s matrix.
    strategy : Strategy

    Returns
    -------
    result : CointegrationResult
    log_prices : pandas.DataFrame
        The log prices it tested (the gate re-tests them).
    """
    excluded = find_unusable_symbols(closes, max_flat_fraction=strategy.max_flat_fraction)
    usable = [s for s in closes.columns if s not in excluded]
    log_prices = np.log(closes[usable])
    result = find_cointegrated_pairs(
        log_prices,
        correlation_matrix,
        correlation_min=strategy.correlation_min,
        pvalue_max=strategy.eg_pvalue_max,
        require_both_orderings=strategy.eg_require_both_orderings,
        fdr_alpha=strategy.fdr_alpha,
    )
    return result, log_prices


def spread_returns(closes: pd.DataFrame, y: str, x: str, hedge_ratio: float, intercept: float) -> pd.Series:
    """Daily changes of the spread log(y) − β·log(x) − α (the formation window's β and α).

    Parameters
    ----------
    closes : pandas.DataFrame
    y, x : str
        The legs' columns.
    hedge_ratio, intercept : float

    Returns
    -------
    pandas.Series
    """
    return spread(closes[y], closes[x], hedge_ratio, intercept).diff().dropna()


def empty_garch_frame() -> pd.DataFrame:
    """An empty ``garch_models`` frame.

    Returns
    -------
    pandas.DataFrame
        No rows, the stage's columns.
    """
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in GARCH_COLUMNS})
    return frame.astype(
        {"pair_id": object, "converged": bool, "n_obs": "int64", "convergence_message": object, "estimator": object}
    )


def causal_spread_changes(closes: pd.DataFrame, y: str, x: str, window: int) -> pd.Series:
    """Spread changes with a hedge ratio estimated before each change: ``Δln y_t − β_{t−1}·Δln x_t``.

    β_{t−1} is the OLS slope of ln y on [1, ln x] over the ``window`` sessions ending at t−1, so no
    change is measured with a β that saw it (running sums; equal to
    :func:`pairs_assets.quant.cointegration.hedge_ratio` on each window, checked in the tests).

    Parameters
    ----------
    closes : pandas.DataFrame
    y, x : str
    window : int

    Returns
    -------
    pandas.Series
        One value per session after the first ``window``.
    """
    ly = np.log(closes[y].to_numpy(dtype=float))
    lx = np.log(closes[x].to_numpy(dtype=float))

    def rolling(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(a)])
        return c[window:] - c[:-window]

    # centre on the first value: the running sums of squares stay well conditioned
    cy, cx = ly - ly[0], lx - lx[0]
    sx, sy, sxx, sxy = rolling(cx), rolling(cy), rolling(cx * cx), rolling(cx * cy)
    beta = (sxy - sx * sy / window) / (sxx - sx * sx / window)  # β over the window ending at each session
    changes = np.diff(ly)[window - 1 :] - beta[:-1] * np.diff(lx)[window - 1 :]
    return pd.Series(changes, index=closes.index[window:])


#: GARCH estimators of :func:`garch_stage`
GARCH_ESTIMATORS = ("batched", "arch")


def garch_stage(
    closes: pd.DataFrame, pairs: pd.DataFrame, strategy: Strategy, estimator: str = "batched"
) -> pd.DataFrame:
    """GARCH(1,1) of each pair's spread returns over the GARCH window (``garch_models``).

    ``closes`` holds the pairs' legs over ``strategy.garch_sessions`` sessions ending at the
    formation session: ``garch_window + 1`` for the formation β's spread, ``formation_window`` more
    with ``causal_hedge`` (each change measured with the β of the window before it).

    ``estimator``: ``batched`` (default) fits every pair in one call of
    :func:`pairs_assets.quant.garch.fit_garch_many` (compiled, arch as recorded fallback where the
    compiled fit is not trustworthy); ``arch`` fits pair by pair with :func:`pairs_assets.quant.garch.fit_garch`
    (the reference). The ``estimator`` column says which code produced each row. The two agree to
    a tolerance, not bit for bit: the configs' selections are the same on the sampled partitions of
    ``test_garch_stage_batched``, GARCH-derived numbers within its documented tolerance.
    """
    return garch_stage_many([garch_series(closes, pairs, strategy)], [pairs], strategy, estimator)[0]


def garch_series(closes: pd.DataFrame, pairs: pd.DataFrame, strategy: Strategy) -> list[np.ndarray]:
    """The spread returns :func:`garch_stage` fits, one array per pair (``closes`` as there)."""
    series = []
    for pair in pairs.itertuples():
        if getattr(strategy, "causal_hedge", False):
            returns = causal_spread_changes(closes, pair.y, pair.x, strategy.formation_window).iloc[
                -strategy.garch_window :
            ]
        else:
            returns = spread_returns(
                closes.iloc[-(strategy.garch_window + 1) :], pair.y, pair.x, pair.hedge_ratio, pair.intercept
            )
        series.append(returns.to_numpy())
    return series


def garch_stage_many(
    series: list[list[np.ndarray]], pairs: list[pd.DataFrame], strategy: Strategy, estimator: str = "batched"
) -> list[pd.DataFrame]:
    """:func:`garch_stage` of many partitions (or formation sessions) in one batched fit.

    ``series[k]``: partition k's :func:`garch_series`; ``pairs[k]``: its pairs. Returns the
    garch_models frame of each, in order — each equal to its own :func:`garch_stage` call (a
    series' fit does not depend on the others in the call). The walk-forward fits all its
    formation sessions' pairs this way.
    """
    from pairs_assets.quant.garch import fit_garch_many

    if estimator not in GARCH_ESTIMATORS:
        raise ValueError(f"garch_stage: estimator must be one of {GARCH_ESTIMATORS}, got {estimator!r}")
    flat = [values for item in series for values in item]
    ids = [pair_id for frame in pairs for pair_id in (frame["pair_id"] if len(frame) else [])]
    if estimator == "arch":
        fits = [fit_garch(values, holdout=strategy.garch_holdout, min_obs=GARCH_MIN_OBS) for values in flat]
    else:
        fits = fit_garch_many(flat, holdout=strategy.garch_holdout, min_obs=GARCH_MIN_OBS, labels=ids) if flat else []
    frames, at = [], 0
    for frame in pairs:
        if frame.empty:
            frames.append(empty_garch_frame())
            continue
        rows = []
        for pair_id, fit in zip(frame["pair_id"], fits[at : at + len(frame)]):
            row = {"pair_id": pair_id, **fit.as_dict()}
            row["forecast_score"] = float(forecast_score(fit.forecast_ratio))
            row["unconditional_sigma"] = unconditional_sigma(fit.omega, fit.alpha, fit.beta)
            rows.append(row)
        at += len(frame)
        frames.append(pd.DataFrame(rows)[GARCH_COLUMNS])
    return frames


def selection_stage(
    closes: pd.DataFrame, pairs: pd.DataFrame, garch: pd.DataFrame, strategy: Strategy
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recent backtest and composite score of each pair (``model_selection``).

    Parameters
    ----------
    closes : pandas.DataFrame
        The legs over ``strategy.backtest_sessions`` sessions ending at the formation session
        (unused when there are no pairs); with ``backtest_before_formation`` the backtest trades the
        sessions just before the formation window, with ``backtest_lag`` and ``backtest_cost_bp``.
    pairs : pandas.DataFrame
    garch : pandas.DataFrame
        :func:`garch_stage`'s output.
    strategy : Strategy

    Returns
    -------
    scores : pandas.DataFrame
        :func:`~pairs_assets.quant.scoring.score_models`' output.
    backtests : pandas.DataFrame
    """
    backtests = []
    if closes is not None and getattr(strategy, "backtest_before_formation", False):
        closes = closes.iloc[: len(closes) - strategy.formation_window]  # outside the window that selected the pair
    for pair in pairs.itertuples():
        result = recent_backtest(
            np.log(closes[pair.y].to_numpy()),
            np.log(closes[pair.x].to_numpy()),
            test_window=strategy.backtest_window,
            formation_window=strategy.formation_window,
            entry_z=strategy.entry_z,
            exit_z=strategy.exit_z,
            stop_z=strategy.stop_z,
            lag=getattr(strategy, "backtest_lag", 0),
            cost_bp=getattr(strategy, "backtest_cost_bp", 0.0),
            max_holding=rule.DEFAULT_MAX_HOLDING,  # the rule the walk-forward and the signal job trade
        )
        backtests.append({"pair_id": pair.pair_id, **{c: getattr(result, c) for c in BACKTEST_COLUMNS[1:]}})
    backtest_frame = pd.DataFrame(backtests, columns=BACKTEST_COLUMNS)
    scores = score_models(
        garch,
        backtest_frame,
        weights=tuple(strategy.score_weights),
        threshold=strategy.score_min,
        diag_alpha=strategy.diagnostics_alpha,
        aic_scale=strategy.aic_scale,
    )
    return scores, backtest_frame


def gru_config(strategy: Strategy) -> GRUConfig:
    """The GRU hyperparameters of the strategy settings.

    Parameters
    ----------
    strategy : Strategy

    Returns
    -------
    pairs_assets.quant.gru.GRUConfig
    """
    from pairs_assets.quant.gru import GRUConfig

    return GRUConfig(
        seq_len=strategy.gru_seq_len,
        hidden=strategy.gru_hidden,
        dropout=strategy.gru_dropout,
        lr=strategy.gru_lr,
        batch_size=strategy.gru_batch_size,
        max_epochs=strategy.gru_max_epochs,
        patience=strategy.gru_patience,
        seed=strategy.gru_seed,
        val_frac=strategy.gru_val_frac,
        test_frac=strategy.gru_test_frac,
    )


def pair_spread(closes: pd.DataFrame, y: str, x: str, hedge_ratio: float, intercept: float) -> pd.Series:
    """log(y) − β·log(x) − α with the as-of formation β and α (the spread the trading side trades).

    Parameters
    ----------
    closes : pandas.DataFrame
    y, x : str
    hedge_ratio, intercept : float

    Returns
    -------
    pandas.Series
    """
    return spread(closes[y], closes[x], hedge_ratio, intercept).rename("spread")


def garch_features(spread_levels: pd.Series, config: GRUConfig, horizon: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """GARCH σ and standardized residuals with parameters fitted strictly before the GRU test slice.

    The test slice is the last ``test_frac`` of the sequences; fitting on the returns before
    ``n·(1 − test_frac) − horizon − seq_len`` keeps every test-slice bar out of the parameters.

    Parameters
    ----------
    spread_levels : pandas.Series
    config : GRUConfig
    horizon : int

    Returns
    -------
    frame : pandas.DataFrame
        ``garch_sigma``, ``garch_std_resid``.
    params : dict of str to float
        The feature GARCH parameters.
    """
    from pairs_assets.quant.garch import garch_filter

    returns = spread_levels.diff().dropna()
    fit_until = int(len(returns) * (1.0 - config.test_frac)) - horizon - config.seq_len
    filtered, params = garch_filter(returns, fit_until=fit_until)
    return filtered.reindex(spread_levels.index), params


def period_statistics(spread_levels: pd.Series, formation_window: int, every: int) -> pd.DataFrame | None:
    """The spread mean and σ a trading config in force at each session holds (the GRU's label statistics).

    Formations fall every ``every`` sessions before the end of ``spread_levels`` (the fixed calendar
    schedule, :class:`FormationSchedule`). A session takes the statistics of the formation window
    of the last formation at or before it — what the config in force that session says — and NaN
    before the first formation with a full window.

    Parameters
    ----------
    spread_levels : pandas.Series
        The spread by session, ending at a formation session.
    formation_window : int
    every : int
        Sessions between formations.

    Returns
    -------
    pandas.DataFrame or None
        ``spread_mean``, ``spread_std`` per session; None for ``every`` = 1 (daily re-selection):
        the trailing statistics the label computes itself.
    """
    from pairs_assets.quant.features import formation_statistics

    if every == 1:
        return None
    trailing = formation_statistics(spread_levels, formation_window)
    n = len(spread_levels)
    formation_row = (np.arange(n) - (n - 1)) // every * every + (n - 1)  # the last formation at or before each row
    values = trailing.to_numpy()[np.maximum(formation_row, 0)]
    values[formation_row < 0] = np.nan  # before the window's first formation
    return pd.DataFrame(values, index=trailing.index, columns=trailing.columns)


def gru_hedge(closes: pd.DataFrame, pair: Any, strategy: Strategy, config: GRUConfig) -> tuple[float, float]:
    """The hedge ratio and intercept of the spread the GRU trains, validates and tests on.

    Without ``causal_hedge`` (the seed): the formation's β and α. With it: β and α estimated on the
    ``formation_window`` sessions ending at the last training sequence's session, so the spread of
    the validation and test slices — whose labels look at closes after it — is measured with a
    hedge ratio that saw none of them (the formation's β, estimated on the last sessions of the
    window, would have seen the test slice). The split is the one
    :func:`pairs_assets.quant.gru.fit_pair_model` makes: the sequences' sessions do not depend on β
    (only on which rows are finite).

    Parameters
    ----------
    closes : pandas.DataFrame
        The legs over ``gru_window`` sessions ending at the as-of session.
    pair : object
        With y, x, hedge_ratio, intercept.
    strategy : Strategy
    config : GRUConfig

    Returns
    -------
    hedge_ratio, intercept : float
    """
    from pairs_assets.quant.cointegration import hedge_ratio
    from pairs_assets.quant.features import (
        build_features,
        chronological_split,
        make_labels,
        make_sequences,
        trim_warmup,
    )

    if not strategy.causal_hedge:
        return float(pair.hedge_ratio), float(pair.intercept)
    levels = pair_spread(closes, pair.y, pair.x, pair.hedge_ratio, pair.intercept)
    ones = pd.Series(1.0, index=levels.index).where(levels.diff().notna())  # the GARCH features' finite rows
    features = trim_warmup(build_features(levels, ones, ones * 0.0), pair.pair_id)
    labels = make_labels(
        levels,
        "entry_event",
        horizon=strategy.gru_horizon,
        formation_window=strategy.formation_window,
        exit_z=strategy.exit_z,
        stop_z=strategy.stop_z,
        statistics=period_statistics(levels, strategy.formation_window, strategy.reselect_every),
    )
    _, _, ends = make_sequences(features, labels, config.seq_len, pair.pair_id)
    split = chronological_split(
        len(ends), config.val_frac, config.test_frac, purge=strategy.gru_horizon, pair_id=pair.pair_id
    )
    last_train = closes.index.get_loc(ends[split.train.stop - 1])
    window = np.log(closes.iloc[max(0, last_train - strategy.formation_window + 1) : last_train + 1])
    return hedge_ratio(window[pair.y].to_numpy(), window[pair.x].to_numpy())


def gru_stage_inputs(closes: pd.DataFrame, pair: Any, strategy: Strategy, config: GRUConfig | None = None):
    """What ``gru_models`` trains a pair's GRU on.

    Parameters
    ----------
    closes : pandas.DataFrame
        The legs over ``gru_window`` sessions ending at the as-of session.
    pair : object
        With pair_id, y, x, hedge_ratio, intercept.
    strategy : Strategy
    config : GRUConfig, optional
        Default :func:`gru_config`.

    Returns
    -------
    kwargs : dict
        Keyword arguments (all but ``config``) for :func:`pairs_assets.quant.gru.fit_pair_model`
        (one pair) or, one dict per pair, :func:`pairs_assets.quant.gru.fit_pair_models`.
    feature_garch : dict
    spread : pandas.Series
    garch : pandas.DataFrame
    """
    config = config or gru_config(strategy)
    beta, alpha = gru_hedge(closes, pair, strategy, config)
    levels = pair_spread(closes, pair.y, pair.x, beta, alpha)
    garch, feature_garch = garch_features(levels, config, strategy.gru_horizon)
    kwargs = dict(
        spread=levels,
        garch_sigma=garch["garch_sigma"],
        garch_std_resid=garch["garch_std_resid"],
        entry_z=strategy.entry_z,
        horizon=strategy.gru_horizon,
        pair_id=pair.pair_id,
        # the label is the entry rule's event: the strategy's levels and formation window
        formation_window=strategy.formation_window,
        exit_z=strategy.exit_z,
        stop_z=strategy.stop_z,
        label_statistics=period_statistics(levels, strategy.formation_window, strategy.reselect_every),
    )
    return kwargs, {**feature_garch, "hedge_ratio": beta, "intercept": alpha}, levels, garch


#: What a GRU is trained on, named for gru_models' input fingerprint (a model trained under another
#: definition is retrained, not reused): the label and the feature spread of :func:`gru_stage_inputs`.
GRU_TRAINING = "entry_event label vs the config in force (period_statistics); feature spread gru_hedge"

#: gru_models columns of the feature parameters (:func:`gru_stage_inputs`)
FEATURE_COLUMNS = {
    "mu": "feature_garch_mu",
    "omega": "feature_garch_omega",
    "alpha": "feature_garch_alpha",
    "beta": "feature_garch_beta",
    "hedge_ratio": "feature_hedge_ratio",
    "intercept": "feature_intercept",
}


def feature_hedge(pair: Any) -> tuple[float, float]:
    """The hedge ratio and intercept of a config pair's GRU feature spread.

    Parameters
    ----------
    pair : PairConfig

    Returns
    -------
    hedge_ratio, intercept : float
        The model's ``feature_hedge_ratio`` / ``feature_intercept``; the pair's own when the model has
        none.
    """
    model = pair.model
    if model is not None and model.feature_hedge_ratio is not None:
        return model.feature_hedge_ratio, model.feature_intercept
    return pair.hedge_ratio, pair.intercept


def feature_columns(feature_params: dict[str, float]) -> dict[str, float]:
    """The feature parameters of :func:`gru_stage_inputs` under their ``gru_models`` column names.

    Parameters
    ----------
    feature_params : dict of str to float

    Returns
    -------
    dict of str to float
    """
    return {FEATURE_COLUMNS[k]: v for k, v in feature_params.items()}


def gru_stage_fit(closes: pd.DataFrame, pair: Any, strategy: Strategy, config: GRUConfig | None = None):
    """Train the pair's GRU as ``gru_models`` does.

    One pair of :func:`gru_stage_fit_many` (the batched trainer: a pair trained alone and in a
    partition's or a range's batch gets the same bits).

    Parameters
    ----------
    closes, pair, strategy, config
        As in :func:`gru_stage_inputs`.

    Returns
    -------
    tuple
        (PairModelResult, feature GARCH params, spread, garch frame).

    Raises
    ------
    GRUTrainingError
        The pair is then skipped.
    """
    ((result, *rest),) = gru_stage_fit_many(closes, [pair], strategy, config)
    if isinstance(result, Exception):
        raise result
    return (result, *rest)


def gru_stage_fit_many(closes, pairs: list[Any], strategy: Strategy, config: GRUConfig | None = None) -> list[tuple]:
    """The GRUs of many pairs trained together (:func:`pairs_assets.quant.gru.fit_pair_models`).

    Parameters
    ----------
    closes : pandas.DataFrame or list of pandas.DataFrame
        The legs over ``gru_window`` sessions ending at the as-of session: one frame for all pairs,
        or one frame per pair (pairs of different partitions in one batch).
    pairs : list
    strategy : Strategy
    config : GRUConfig, optional

    Returns
    -------
    list of tuple
        Per pair, in order: (PairModelResult or the ``GRUTrainingError`` that stopped it, feature
        GARCH params, spread, garch frame); the last three are None when the GARCH features already
        failed.
    """
    from pairs_assets.quant.features import GRUTrainingError
    from pairs_assets.quant.gru import fit_pair_models

    config = config or gru_config(strategy)
    frames = closes if isinstance(closes, list) else [closes] * len(pairs)
    prepared: list[tuple] = []
    for frame, pair in zip(frames, pairs):
        try:
            prepared.append(gru_stage_inputs(frame, pair, strategy, config))
        except GRUTrainingError as exc:
            prepared.append((exc, None, None, None))
    ready = [p for p in prepared if isinstance(p[0], dict)]
    fitted = iter(fit_pair_models([p[0] for p in ready], config, min_sequences=strategy.gru_min_sequences))
    return [(next(fitted), *p[1:]) if isinstance(p[0], dict) else p for p in prepared]


def sigma_forecasts_at(closes: pd.DataFrame, pairs: pd.DataFrame, garch: pd.DataFrame) -> pd.Series:
    """Each pair's 1-step GARCH σ forecast after the last session of ``closes``, parameters fixed.

    For a config later in a trading period than its formation session: the fitted GARCH(1,1) is
    filtered (:func:`pairs_assets.quant.garch.filter_fixed`) through the formation spread's changes
    up to the config's as-of session.

    Parameters
    ----------
    closes : pandas.DataFrame
    pairs : pandas.DataFrame
    garch : pandas.DataFrame

    Returns
    -------
    pandas.Series
        Indexed by pair_id.
    """
    from pairs_assets.quant.garch import filter_fixed

    params = garch.set_index("pair_id")
    out = {}
    for pair in pairs.itertuples():
        g = params.loc[pair.pair_id]
        changes = spread(closes[pair.y], closes[pair.x], pair.hedge_ratio, pair.intercept).diff().dropna().to_numpy()
        # σ at a placeholder step after the last change is the forecast made at the last close
        sigma, _ = filter_fixed(np.append(changes, 0.0), mu=g["mu"], omega=g["omega"], alpha=g["alpha"], beta=g["beta"])
        out[pair.pair_id] = float(sigma[-1])
    return pd.Series(out, dtype="float64")


def _model_block(row: Any) -> tuple[dict | None, str]:
    status = getattr(row, "status", None)
    if status != "trained":
        return None, f"no model: {getattr(row, 'reason', None) or 'not trained'}"
    return (
        {
            "name": row.model_name,
            "version": str(row.model_version),
            "mlflow_run_id": row.mlflow_run_id,
            "probability_threshold": row.probability_threshold,
            "beats_baselines": bool(row.beats_baselines),
            "test_f1": row.test_f1,
            "best_baseline_f1": row.best_baseline_f1,
            # the GARCH parameters behind the GRU's σ / residual features (fitted before its test
            # slice); the signal job filters the live spread with these, as in training
            "feature_garch": {k: getattr(row, f"feature_garch_{k}") for k in ["mu", "omega", "alpha", "beta"]},
            # the hedge ratio and intercept of the spread the GRU's features are built on
            "feature_hedge_ratio": getattr(row, "feature_hedge_ratio", None),
            "feature_intercept": getattr(row, "feature_intercept", None),
        },
        "trained",
    )


def build_trading_config(
    *,
    as_of: str,
    effective_session: str,
    formation_session: str | None = None,
    sector: str,
    source: str,
    symbols: tuple[str, ...] | list[str],
    pairs: pd.DataFrame,
    garch: pd.DataFrame,
    scores: pd.DataFrame,
    models: pd.DataFrame | None,
    formation_closes: pd.DataFrame,
    strategy: Strategy,
    fingerprint: str,
) -> TradingConfig:
    """The trading config (``trading_config``) for the selected pairs, best rank first.

    Spread mean and σ are those of the formation window's spread; sizing is
    :func:`pairs_assets.quant.sizing.pair_sizing` on the GARCH 1-step σ.

    Parameters
    ----------
    as_of, effective_session : str
    formation_session : str, optional
    sector, source : str
    symbols : sequence of str
    pairs, garch, scores : pandas.DataFrame
        The stages' outputs.
    models : pandas.DataFrame or None
        ``gru_models``' output (None: no GRU stage in this run, every pair trades ungated).
    formation_closes : pandas.DataFrame
    strategy : Strategy
    fingerprint : str

    Returns
    -------
    TradingConfig
    """
    selected = scores[scores["selected"]].sort_values("rank") if not scores.empty else scores
    merged = selected.merge(pairs, on="pair_id").merge(garch, on="pair_id", suffixes=("", "_garch"))
    if models is not None and not models.empty:
        merged = merged.merge(models, on="pair_id", how="left", suffixes=("", "_gru"))
    entries = []
    for row in merged.itertuples():
        pair_spread = spread(formation_closes[row.y], formation_closes[row.x], row.hedge_ratio, row.intercept)
        sizing = pair_sizing(
            sigma_forecast=row.sigma_forecast,
            hedge_ratio=row.hedge_ratio,
            target_daily_vol=strategy.target_daily_vol,
            max_position=strategy.max_position,
            max_portfolio_risk=strategy.max_portfolio_risk,
            n_pairs=len(merged),
        )
        model, model_note = (None, "no GRU stage in this run") if models is None else _model_block(row)
        entries.append(
            {
                "pair_id": row.pair_id,
                "y": row.y,
                "x": row.x,
                "hedge_ratio": row.hedge_ratio,
                "intercept": row.intercept,
                "spread_mean": pair_spread.mean(),
                "spread_std": pair_spread.std(ddof=1),
                "half_life": row.half_life,
                "correlation": row.correlation,
                "eg_pvalue": row.eg_pvalue,
                "garch": {
                    k: getattr(row, k)
                    for k in ["mu", "omega", "alpha", "beta", "persistence", "sigma_forecast", "unconditional_sigma"]
                },
                "levels": {"entry_z": strategy.entry_z, "exit_z": strategy.exit_z, "stop_z": strategy.stop_z},
                "sizing": sizing,
                "scores": {
                    k: getattr(row, k)
                    for k in ["aic_score", "forecast_score", "backtest_score", "diagnostic_score", "composite", "rank"]
                },
                "model": model,
                "model_note": model_note,
            }
        )
    # parsed as a reader parses it: a number no reader would accept fails here, naming the field
    return TradingConfig.parse(
        {
            "schema_version": SCHEMA_VERSION,
            "as_of_session": as_of,
            "effective_session": effective_session,
            "formation_session": formation_session if formation_session not in (None, as_of) else None,
            "sector": sector,
            "source": source,
            "symbols": list(symbols),
            "input_fingerprint": fingerprint,
            "gru_gate": strategy.gru_gate,
            "thresholds": {
                "correlation_min": strategy.correlation_min,
                "eg_pvalue_max": strategy.eg_pvalue_max,
                "score_min": strategy.score_min,
            },
            "windows": {
                "formation": strategy.formation_window,
                "garch": strategy.garch_window,
                "backtest": strategy.backtest_window,
                "gru": strategy.gru_window,
            },
            "risk": {
                "max_portfolio_risk": strategy.max_portfolio_risk,
                "max_position": strategy.max_position,
                "target_daily_vol": strategy.target_daily_vol,
            },
            "pairs": entries,
        },
        where=f"trading config {as_of}|{sector}",
    )
