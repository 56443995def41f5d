"""Model performance over time: rankings by test F1 and 7-/30-session trends.

Input everywhere: the ``model_performance`` history, one row per (as_of_session, sector, pair_id)
with ``test_f1`` (rows of skipped pairs have NaN and are ignored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RANKING_COLUMNS = [
    "rank",
    "sector",
    "pair_id",
    "as_of_session",
    "test_f1",
    "best_baseline_f1",
    "beats_baselines",
    "model_name",
    "model_version",
]
TREND_COLUMNS = [
    "sector",
    "pair_id",
    "last_session",
    "f1_last",
    "f1_mean_7",
    "f1_mean_30",
    "f1_slope_7",
    "f1_slope_30",
    "n_models",
]


def rank_models(performance: pd.DataFrame) -> pd.DataFrame:
    """Each pair's latest trained model, ranked by test F1.

    Parameters
    ----------
    performance : pandas.DataFrame
        The ``model_performance`` table (one row per pair and training).

    Returns
    -------
    pandas.DataFrame
        :data:`RANKING_COLUMNS`, one row per pair, ``rank`` 1 = best (ties by sector, pair).
    """
    trained = performance[performance["test_f1"].notna()]
    if trained.empty:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    latest = trained.sort_values("as_of_session").groupby(["sector", "pair_id"], as_index=False).tail(1)
    latest = latest.sort_values(["test_f1", "sector", "pair_id"], ascending=[False, True, True], kind="mergesort")
    latest = latest.assign(rank=np.arange(1, len(latest) + 1))
    return latest[RANKING_COLUMNS].reset_index(drop=True)


def _slope(values: pd.Series) -> float:
    """OLS slope of F1 per model (consecutive as-of sessions), NaN with fewer than two points."""
    y = values.to_numpy(dtype=float)
    if len(y) < 2:
        return float("nan")
    x = np.arange(len(y), dtype=float)
    return float(np.polyfit(x, y, 1)[0])


def model_trends(performance: pd.DataFrame, short: int = 7, long: int = 30) -> pd.DataFrame:
    """Per pair: the last test F1, and the mean and OLS slope of test F1 over its last models.

    Parameters
    ----------
    performance : pandas.DataFrame
        The ``model_performance`` table.
    short, long : int, default 7 and 30
        How many of the pair's latest models each window covers.

    Returns
    -------
    pandas.DataFrame
        :data:`TREND_COLUMNS`, one row per pair (``f1_mean_7``/``f1_slope_7`` over ``short``,
        ``…_30`` over ``long`` models).
    """
    trained = performance[performance["test_f1"].notna()].sort_values("as_of_session")
    rows = []
    for (sector, pair_id), group in trained.groupby(["sector", "pair_id"], sort=True):
        f1 = group["test_f1"]
        rows.append(
            {
                "sector": sector,
                "pair_id": pair_id,
                "last_session": group["as_of_session"].iloc[-1],
                "f1_last": float(f1.iloc[-1]),
                "f1_mean_7": float(f1.tail(short).mean()),
                "f1_mean_30": float(f1.tail(long).mean()),
                "f1_slope_7": _slope(f1.tail(short)),
                "f1_slope_30": _slope(f1.tail(long)),
                "n_models": int(len(group)),
            }
        )
    return pd.DataFrame(rows, columns=TREND_COLUMNS)
