"""Classification metrics, the decision threshold and the baselines the GRU must beat.

All scores come from scikit-learn (``sklearn.metrics``); baselines are scored on the same test
slice as the GRU. Pure numpy/scikit-learn; no dagster, no resources.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from pairs_assets.quant.features import Z_FEATURE, FeatureScaler

METRIC_NAMES = ("f1", "precision", "recall", "accuracy", "roc_auc")
BASELINE_NAMES = ("majority", "logistic", "z_rule")


def classification_metrics(y_true: np.ndarray, prob_or_pred: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """F1, precision, recall, accuracy and ROC AUC of binary predictions.

    Parameters
    ----------
    y_true : ndarray
        0/1 labels.
    prob_or_pred : ndarray
        Probabilities (or scores, or hard 0/1 predictions) of class 1.
    threshold : float, default 0.5
        Predict 1 where ``prob_or_pred >= threshold``.

    Returns
    -------
    dict of str to float
        ``f1``, ``precision``, ``recall``, ``accuracy``, ``roc_auc``. Precision/recall/F1 are 0
        where undefined (no predicted or no true positives); ``roc_auc`` (from the scores, not the
        thresholded predictions) is NaN when ``y_true`` holds a single class.

    References
    ----------
    scikit-learn ``sklearn.metrics`` (Pedregosa et al., JMLR 12, 2011).
    """
    y = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(prob_or_pred, dtype="float64").ravel()
    if y.shape != scores.shape:
        raise ValueError(f"y_true has {y.shape[0]} labels but {scores.shape[0]} scores")
    pred = (scores >= threshold).astype(int)
    roc_auc = float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": roc_auc,
    }


def select_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold maximising F1 on the given (validation) slice.

    Parameters
    ----------
    y_true : ndarray
        0/1 labels.
    prob : ndarray
        Probabilities of class 1.

    Returns
    -------
    float
        One of the distinct scores (``sklearn.metrics.precision_recall_curve``), the lowest on a
        tie; 0.5 when the slice has no positive label.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype="float64").ravel()
    if y.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def baseline_metrics(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    scaler: FeatureScaler,
    entry_z: float,
    z_test: np.ndarray | None = None,
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """Test-slice metrics of three baselines, on the GRU's own sequences and slices.

    - ``majority``: always the class most frequent in the *training* labels (ties → 1); its score
      is the training positive rate, a constant, so its ROC AUC is 0.5.
    - ``logistic``: ``sklearn.linear_model.LogisticRegression`` (L2, C=1, lbfgs) on the *last step*
      of each sequence (the features at the as-of session), scaled with the GRU's train-only
      scaler; like the GRU, its threshold maximises F1 on the validation slice.
    - ``z_rule``: "revert whenever |z| > entry level" with z the spread's z-score at the as-of
      session (known at t): ``z_test`` when given (``fit_pair_model`` passes the trailing z over
      the label's mean window), else the ``z_7`` feature — whose |z| cannot exceed
      6/sqrt(7) = 2.27, so the rule rarely fires at an entry of 2. |z| is its score for ROC AUC.

    Parameters
    ----------
    X_train, X_val, X_test : ndarray
        Raw (unscaled) sequences ``[n, seq_len, n_features]``.
    y_train, y_val, y_test : ndarray
        0/1 labels.
    scaler : FeatureScaler
        The train-only scaler (its ``feature_names`` locate ``z_7``).
    entry_z : float
        The trading entry level (e.g. 2.0).
    z_test : ndarray, optional
        z-scores at the test sequences' last sessions, for the rule.
    seed : int, default 42
        random_state of the logistic solver (lbfgs is deterministic anyway).

    Returns
    -------
    dict
        ``{"majority": metrics, "logistic": metrics, "z_rule": metrics}`` as
        :func:`classification_metrics` gives them.
    """
    y_train = np.asarray(y_train).astype(int)
    majority = 1 if y_train.mean() >= 0.5 else 0
    constant = np.full(len(y_test), float(y_train.mean()))
    majority_pred = np.full(len(y_test), float(majority))
    results: dict[str, dict[str, float]] = {}
    results["majority"] = classification_metrics(y_test, majority_pred, threshold=0.5)
    results["majority"]["roc_auc"] = classification_metrics(y_test, constant)["roc_auc"]

    last_train = scaler.transform(X_train[:, -1, :])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(last_train, y_train)
    p_val = logistic.predict_proba(scaler.transform(X_val[:, -1, :]))[:, 1]
    p_test = logistic.predict_proba(scaler.transform(X_test[:, -1, :]))[:, 1]
    results["logistic"] = classification_metrics(y_test, p_test, select_threshold(y_val, p_val))

    if z_test is None:
        z_test = X_test[:, -1, scaler.feature_names.index(Z_FEATURE)]
    abs_z = np.abs(np.asarray(z_test, dtype="float64"))
    if abs_z.shape != (len(y_test),) or not np.isfinite(abs_z).all():
        raise ValueError(f"z_test must hold {len(y_test)} finite z-scores, one per test sequence")
    results["z_rule"] = classification_metrics(y_test, abs_z, threshold=np.nextafter(entry_z, np.inf))
    return results
