"""A pair's GRU gate from its spread history: features → labels → sequences → chronological split
with purge → scaler fitted on the training slice → GRU trained (:mod:`.training`) → threshold chosen
on validation → metrics on train / validation / test and baselines on test
(:func:`fit_pair_model`; many pairs trained together: :func:`fit_pair_models`).

References: López de Prado, *Advances in Financial Machine Learning* (2018), ch. 7, for purging
overlapping labels at split boundaries.

Pure numpy/pandas/torch; no dagster, no resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pairs_assets.quant.classification import (
    baseline_metrics,
    classification_metrics,
    select_threshold,
)
from pairs_assets.quant.features import (
    DEFAULT_EXIT_Z,
    DEFAULT_FORMATION_WINDOW,
    DEFAULT_HORIZON,
    DEFAULT_MEAN_WINDOW,
    DEFAULT_REVERSION_FRACTION,
    DEFAULT_STOP_Z,
    ChronologicalSplit,
    FeatureScaler,
    GRUTrainingError,
    InsufficientSequencesError,
    NaNFeaturesError,
    SingleClassError,
    build_features,
    chronological_split,
    make_labels,
    make_sequences,
    min_sessions_for,
    pair_prefix,
    rolling_zscore,
    trim_warmup,
)
from pairs_assets.quant.features import (
    session_label as _session,
)
from pairs_assets.quant.gru.model import GRUClassifier, GRUConfig, predict_proba
from pairs_assets.quant.gru.training import TrainResult, train_gru, train_gru_many
from pairs_assets.quant.strategy import DEFAULT_STRATEGY

__all__ = [
    "DEFAULT_MIN_SEQUENCES",
    "DEFAULT_TARGET_SEQUENCES",
    "PairModelResult",
    "fit_pair_model",
    "fit_pair_models",
]

#: Floor: below this many sequences the 20 % test slice is too small to score (≈ 50); the
#: strategy's ``gru_min_sequences`` default.
DEFAULT_MIN_SEQUENCES = DEFAULT_STRATEGY.gru_min_sequences
#: What the training window should provide where history allows (see ``min_sessions_for``).
DEFAULT_TARGET_SEQUENCES = 1000


@dataclass
class PairModelResult:
    """Everything a caller needs to log, register and gate a pair's GRU.

    Attributes
    ----------
    pair_id : str
    model : GRUClassifier
    config : GRUConfig
    feature_names : tuple of str
    scaler : FeatureScaler
    horizon, mean_window : int
    reversion_fraction, entry_z : float
    rule_z_window : int
        The z window of the ``|z| > entry`` baseline.
    threshold : float
        The probability threshold chosen on the validation slice.
    metrics, baseline_metrics : dict
        Per slice (and per baseline): :func:`~pairs_assets.quant.classification.classification_metrics`.
    beats_baselines : bool
        Test F1 strictly above every baseline's test F1.
    history : list of dict
    best_epoch : int
    stopped_early : bool
    input_example : ndarray
        A few raw sequences (the MLflow signature's example).
    n_sessions, n_sequences : int
    split : dict of str to int
    slice_sessions : dict of str to (str, str)
        First and last session of each slice.
    positive_rate : dict of str to float
    device : str
    train_seconds : float
    extra : dict
    label : str
    exit_z, stop_z : float
    formation_window : int
    entry_metrics : dict of str to float
        Test metrics on the sessions with |z_t| >= entry_z.
    """

    pair_id: str
    model: GRUClassifier
    config: GRUConfig
    feature_names: tuple[str, ...]
    scaler: FeatureScaler
    horizon: int
    mean_window: int
    reversion_fraction: float
    entry_z: float
    rule_z_window: int  # window of the z-score of the |z| > entry_z baseline and the z-band plot
    threshold: float
    metrics: dict[str, dict[str, float]]  # "train" / "val" / "test" -> classification metrics
    baseline_metrics: dict[str, dict[str, float]]  # "majority" / "logistic" / "z_rule" -> test metrics
    beats_baselines: bool
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    input_example: np.ndarray  # raw float32 [k, seq_len, n_features], from the test slice
    n_sessions: int
    n_sequences: int
    split: dict[str, int]
    slice_sessions: dict[str, tuple[str, str]]  # slice -> (first, last) as-of session
    positive_rate: dict[str, float]
    device: str
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    label: str = "entry_event"
    exit_z: float = DEFAULT_EXIT_Z
    stop_z: float = DEFAULT_STOP_Z
    formation_window: int = DEFAULT_FORMATION_WINDOW
    #: test metrics on the sessions where |z_t| >= entry_z (the config's z), where the gate acts;
    #: empty when the test slice has too few such sessions of both classes
    entry_metrics: dict[str, float] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        """``train_f1``, ``val_roc_auc``, ``test_…``, ``baseline_<name>_<metric>``, threshold, … as floats."""
        flat: dict[str, float] = {}
        for part, values in self.metrics.items():
            flat.update({f"{part}_{k}": float(v) for k, v in values.items()})
        for name, values in self.baseline_metrics.items():
            flat.update({f"baseline_{name}_{k}": float(v) for k, v in values.items()})
        for part, rate in self.positive_rate.items():
            flat[f"{part}_positive_rate"] = float(rate)
        flat.update({f"test_entry_{k}": float(v) for k, v in self.entry_metrics.items()})
        flat["threshold"] = float(self.threshold)
        flat["best_epoch"] = float(self.best_epoch)
        flat["epochs_run"] = float(len(self.history))
        flat["beats_baselines"] = float(self.beats_baselines)
        flat["train_seconds"] = float(self.train_seconds)
        return flat

    def params(self) -> dict[str, Any]:
        """Hyperparameters and data/feature parameters, flat, for logging."""
        params: dict[str, Any] = dict(self.config.as_params())
        params.update(
            {
                "label": self.label,
                "label_horizon": self.horizon,
                "label_formation_window": self.formation_window,
                "label_exit_z": self.exit_z,
                "label_stop_z": self.stop_z,
                "label_mean_window": self.mean_window,
                "label_reversion_fraction": self.reversion_fraction,
                "entry_z": self.entry_z,
                "rule_z_window": self.rule_z_window,
                "features": ",".join(self.feature_names),
                "n_features": len(self.feature_names),
                "n_sessions": self.n_sessions,
                "n_sequences": self.n_sequences,
                **{f"split_{k}": v for k, v in self.split.items()},
                **{f"{part}_first_session": s[0] for part, s in self.slice_sessions.items()},
                **{f"{part}_last_session": s[1] for part, s in self.slice_sessions.items()},
                "device": self.device,
                "threshold_rule": "max F1 on validation",
                "logistic_features": "last step, train-only scaling",
                "feature_rows": "session closes up to the as-of session (no intraday row)",
            }
        )
        return params


def _require_two_classes(y: np.ndarray, part: str, who: str, sessions: pd.Index) -> None:
    classes = np.unique(y)
    if len(classes) < 2:
        only = int(classes[0]) if len(classes) else "none"
        raise SingleClassError(
            f"{who}the {part} slice ({len(y)} sequences, {_session(sessions[0])} .. "
            f"{_session(sessions[-1])}) has a "
            f"single label class ({only}); metrics and training need both reverting and "
            "non-reverting examples"
        )


def fit_pair_model(
    spread: pd.Series,
    garch_sigma: pd.Series,
    garch_std_resid: pd.Series,
    entry_z: float,
    config: GRUConfig = GRUConfig(),
    horizon: int = DEFAULT_HORIZON,
    min_sequences: int = DEFAULT_MIN_SEQUENCES,
    *,
    pair_id: str | None = None,
    mean_window: int = DEFAULT_MEAN_WINDOW,
    reversion_fraction: float = DEFAULT_REVERSION_FRACTION,
    example_rows: int = 5,
    label: str = "entry_event",
    formation_window: int = DEFAULT_FORMATION_WINDOW,
    exit_z: float = DEFAULT_EXIT_Z,
    stop_z: float = DEFAULT_STOP_Z,
    label_statistics: pd.DataFrame | None = None,
) -> PairModelResult:
    """Train and score a pair's GRU gate on its spread history up to the as-of session.

    The threshold maximises F1 on the validation slice; the test metrics use it.

    Parameters
    ----------
    spread : pandas.Series
        The spread indexed by session, ending at the as-of session (the caller slices the training
        window: e.g. ``min_sessions_for(DEFAULT_TARGET_SEQUENCES)`` sessions or more).
    garch_sigma, garch_std_resid : pandas.Series
        GARCH conditional volatility and standardized residuals on the same sessions (leading NaN =
        warm-up, dropped).
    entry_z : float
        The trading entry level, for the ``|z| > entry`` baseline (z over ``formation_window`` for
        the ``entry_event`` label, over ``mean_window`` for ``reversion``) and the entry-session
        metrics.
    config : GRUConfig, optional
        GRU hyperparameters and split fractions.
    horizon : int, default DEFAULT_HORIZON
        Label horizon in sessions (see :func:`~pairs_assets.quant.features.entry_event_labels`);
        also the purge gap at each split boundary.
    min_sequences : int, default DEFAULT_MIN_SEQUENCES
        Fewer labelled sequences raise ``InsufficientSequencesError``.
    pair_id : str, optional
        Named in every error message.
    mean_window, reversion_fraction
        The ``reversion`` label's (:func:`~pairs_assets.quant.features.reversion_labels`).
    example_rows : int, default 5
        Sequences kept as ``input_example``.
    label : {"entry_event", "reversion"}, default "entry_event"
        ``entry_event``: :func:`~pairs_assets.quant.features.entry_event_labels` with
        ``formation_window``, ``exit_z``, ``stop_z`` (the strategy's values).
    formation_window, exit_z, stop_z
        The ``entry_event`` label's.
    label_statistics : pandas.DataFrame, optional
        Per-session ``spread_mean`` / ``spread_std`` of the config in force (trading periods);
        default the trailing ``formation_window`` statistics.

    Returns
    -------
    PairModelResult

    Raises
    ------
    InsufficientSequencesError, SingleClassError, NaNFeaturesError, TrainingDivergedError
        All ``GRUTrainingError`` (a ``ValueError``), each naming the pair and the field or slice.
    """
    prepared = _prepare_pair(
        spread,
        garch_sigma,
        garch_std_resid,
        entry_z,
        config,
        horizon,
        min_sequences,
        pair_id=pair_id,
        mean_window=mean_window,
        reversion_fraction=reversion_fraction,
        label=label,
        formation_window=formation_window,
        exit_z=exit_z,
        stop_z=stop_z,
        label_statistics=label_statistics,
    )
    data = prepared.data
    trained = train_gru(
        data["train"][0], data["train"][1], data["val"][0], data["val"][1], config, prepared.scaler, pair_id
    )
    return _finish_pair(prepared, trained, example_rows)


@dataclass
class _PreparedPair:
    """A pair's sequences, split and scaler: everything :func:`fit_pair_model` has before training."""

    spread: pd.Series
    entry_z: float
    config: GRUConfig
    horizon: int
    pair_id: str | None
    mean_window: int
    reversion_fraction: float
    label: str
    formation_window: int
    exit_z: float
    stop_z: float
    features: pd.DataFrame
    n_sequences: int
    split: ChronologicalSplit
    data: dict[str, tuple[np.ndarray, np.ndarray, pd.Index]]
    scaler: FeatureScaler


def _prepare_pair(
    spread,
    garch_sigma,
    garch_std_resid,
    entry_z,
    config,
    horizon,
    min_sequences,
    *,
    pair_id,
    mean_window,
    reversion_fraction,
    label,
    formation_window,
    exit_z,
    stop_z,
    label_statistics,
) -> _PreparedPair:
    who = pair_prefix(pair_id)
    features = trim_warmup(build_features(spread, garch_sigma, garch_std_resid), pair_id)
    labels = make_labels(
        spread,
        label,
        horizon=horizon,
        formation_window=formation_window,
        exit_z=exit_z,
        stop_z=stop_z,
        mean_window=mean_window,
        reversion_fraction=reversion_fraction,
        statistics=label_statistics,
    )
    X, y, ends = make_sequences(features, labels, config.seq_len, pair_id)
    label_warmup = (formation_window if label == "entry_event" else mean_window) - 1
    if len(X) < min_sequences:
        raise InsufficientSequencesError(
            f"{who}{len(X)} labelled sequences from {len(spread)} sessions "
            f"({_session(ends[0])} .. {_session(ends[-1])}), need at least {min_sequences}: provide at least "
            f"{min_sessions_for(min_sequences, config.seq_len, horizon, label_warmup=label_warmup)} "
            f"sessions (seq_len {config.seq_len}, horizon {horizon})"
        )
    split: ChronologicalSplit = chronological_split(
        len(X), config.val_frac, config.test_frac, purge=horizon, pair_id=pair_id
    )
    parts = {"train": split.train, "val": split.val, "test": split.test}
    data = {
        part: (X[rng.start : rng.stop], y[rng.start : rng.stop], ends[rng.start : rng.stop])
        for part, rng in parts.items()
    }
    for part, (_, y_part, ends_part) in data.items():
        _require_two_classes(y_part, {"val": "validation"}.get(part, part), who, ends_part)

    # train-only scaling: the feature rows that the training sequences cover, nothing later
    scaler = FeatureScaler.fit(features.loc[: data["train"][2][-1]])
    return _PreparedPair(
        spread=spread,
        entry_z=entry_z,
        config=config,
        horizon=horizon,
        pair_id=pair_id,
        mean_window=mean_window,
        reversion_fraction=reversion_fraction,
        label=label,
        formation_window=formation_window,
        exit_z=exit_z,
        stop_z=stop_z,
        features=features,
        n_sequences=len(X),
        split=split,
        data=data,
        scaler=scaler,
    )


def _finish_pair(prepared: _PreparedPair, trained: TrainResult, example_rows: int) -> PairModelResult:
    """Threshold, metrics and baselines of a trained pair model (the rest of :func:`fit_pair_model`)."""
    p = prepared
    who, data, spread, config, entry_z = pair_prefix(p.pair_id), p.data, p.spread, p.config, p.entry_z
    label, formation_window, mean_window = p.label, p.formation_window, p.mean_window
    probs = {part: predict_proba(trained.model, values[0]) for part, values in data.items()}
    threshold = select_threshold(data["val"][1], probs["val"])
    metrics = {part: classification_metrics(data[part][1], probs[part], threshold) for part in data}
    rule_window = formation_window if label == "entry_event" else mean_window
    rule_z = rolling_zscore(spread.astype("float64"), rule_window).reindex(data["test"][2])
    if not np.isfinite(rule_z.to_numpy()).all():
        raise NaNFeaturesError(f"{who}the {rule_window}-session z-score is NaN in the test slice (flat spread?)")
    baselines = baseline_metrics(
        *data["train"][:2],
        *data["val"][:2],
        *data["test"][:2],
        scaler=p.scaler,
        entry_z=entry_z,
        z_test=rule_z.to_numpy(),
        seed=config.seed,
    )
    beats = all(metrics["test"]["f1"] > b["f1"] for b in baselines.values())
    # where the gate acts: test sessions whose config z is beyond the entry level
    at_entry = np.abs(rule_z.to_numpy()) >= entry_z
    entry_metrics: dict[str, float] = {}
    y_entry = data["test"][1][at_entry]
    if at_entry.sum() >= 10 and len(np.unique(y_entry)) == 2:
        entry_metrics = dict(classification_metrics(y_entry, probs["test"][at_entry], threshold))
        entry_metrics["n"] = float(at_entry.sum())
    return PairModelResult(
        pair_id=p.pair_id or "",
        model=trained.model,
        config=config,
        feature_names=tuple(p.features.columns),
        scaler=p.scaler,
        horizon=p.horizon,
        mean_window=mean_window,
        reversion_fraction=p.reversion_fraction,
        entry_z=float(entry_z),
        rule_z_window=rule_window,
        threshold=threshold,
        metrics=metrics,
        baseline_metrics=baselines,
        beats_baselines=beats,
        history=trained.history,
        best_epoch=trained.best_epoch,
        stopped_early=trained.stopped_early,
        input_example=np.ascontiguousarray(data["test"][0][:example_rows]),
        n_sessions=len(spread),
        n_sequences=p.n_sequences,
        split=p.split.as_dict(),
        slice_sessions={part: (_session(v[2][0]), _session(v[2][-1])) for part, v in data.items()},
        positive_rate={part: float(v[1].mean()) for part, v in data.items()},
        device=trained.device,
        train_seconds=trained.seconds,
        label=label,
        exit_z=float(p.exit_z),
        stop_z=float(p.stop_z),
        formation_window=int(formation_window),
        entry_metrics=entry_metrics,
    )


def fit_pair_models(
    pairs: list[dict[str, Any]],
    config: GRUConfig = GRUConfig(),
    min_sequences: int = DEFAULT_MIN_SEQUENCES,
    example_rows: int = 5,
) -> list[PairModelResult | GRUTrainingError]:
    """:func:`fit_pair_model` for many pairs, trained together by :func:`train_gru_many`.

    The batched API of the GRU stage (a partition's selected pairs; a range of partitions in a
    single-run backfill; the walk-forward's pair-sessions): give every pair there is to train in
    one call. Each pair gets what :func:`train_gru` would give it alone up to float32 rounding
    (same seeded initial weights, minibatch order, dropout draws and early stopping; see
    :func:`train_gru_many`), and exactly the same result whatever other pairs share the call (each
    model's arithmetic is independent of the stack: tested), so a partition trained alone and
    inside a range backfill agree bit for bit. ``config.device`` ``auto`` → CUDA when present.

    Parameters
    ----------
    pairs : list of dict
        Per pair, the keyword arguments of :func:`fit_pair_model` other than ``config``,
        ``min_sequences`` and ``example_rows``: ``spread``, ``garch_sigma``, ``garch_std_resid``,
        ``entry_z`` (required), ``pair_id``, ``horizon``, ``label``, ``formation_window``,
        ``exit_z``, ``stop_z``, ``label_statistics``, ``mean_window``, ``reversion_fraction``
        (optional, the same defaults).
    config, min_sequences, example_rows
        Shared, as in :func:`fit_pair_model`.

    Returns
    -------
    list
        Per pair, in input order: its :class:`PairModelResult`, or the ``GRUTrainingError`` that
        stopped it (too few sequences, a single-class slice, NaN features, divergence) — one pair's
        failure never stops the others.
    """
    prepared: list[_PreparedPair | GRUTrainingError] = []
    for item in pairs:
        kwargs = dict(item)
        try:
            prepared.append(
                _prepare_pair(
                    kwargs.pop("spread"),
                    kwargs.pop("garch_sigma"),
                    kwargs.pop("garch_std_resid"),
                    kwargs.pop("entry_z"),
                    config,
                    kwargs.pop("horizon", DEFAULT_HORIZON),
                    min_sequences,
                    pair_id=kwargs.pop("pair_id", None),
                    mean_window=kwargs.pop("mean_window", DEFAULT_MEAN_WINDOW),
                    reversion_fraction=kwargs.pop("reversion_fraction", DEFAULT_REVERSION_FRACTION),
                    label=kwargs.pop("label", "entry_event"),
                    formation_window=kwargs.pop("formation_window", DEFAULT_FORMATION_WINDOW),
                    exit_z=kwargs.pop("exit_z", DEFAULT_EXIT_Z),
                    stop_z=kwargs.pop("stop_z", DEFAULT_STOP_Z),
                    label_statistics=kwargs.pop("label_statistics", None),
                )
            )
        except GRUTrainingError as exc:
            prepared.append(exc)
        if kwargs:
            raise TypeError(f"fit_pair_models: unknown field(s) {sorted(kwargs)} for pair {item.get('pair_id')!r}")
    ready = [p for p in prepared if isinstance(p, _PreparedPair)]
    trained = train_gru_many(
        [(p.data["train"][0], p.data["train"][1], p.data["val"][0], p.data["val"][1]) for p in ready],
        config,
        [p.scaler for p in ready],
        [p.pair_id for p in ready],
    )
    by_id = {id(p): t for p, t in zip(ready, trained)}
    out: list[PairModelResult | GRUTrainingError] = []
    for p in prepared:
        if not isinstance(p, _PreparedPair):
            out.append(p)
            continue
        result = by_id[id(p)]
        if isinstance(result, GRUTrainingError):
            out.append(result)
            continue
        try:
            out.append(_finish_pair(p, result, example_rows))
        except GRUTrainingError as exc:
            out.append(exc)
    return out
