import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant.performance import model_trends, rank_models


def _history():
    sessions = [str(d.date()) for d in pd.bdate_range("2022-10-03", periods=35)]
    rows = []
    for i, s in enumerate(sessions):
        rows.append(
            {
                "as_of_session": s,
                "sector": "tech",
                "pair_id": "A-B",
                "test_f1": 0.5 + 0.01 * i,
                "best_baseline_f1": 0.5,
                "beats_baselines": True,
                "model_name": "m",
                "model_version": str(i + 1),
            }
        )
        rows.append(
            {
                "as_of_session": s,
                "sector": "energy",
                "pair_id": "C-D",
                "test_f1": 0.9 - 0.002 * i,
                "best_baseline_f1": 0.6,
                "beats_baselines": True,
                "model_name": "n",
                "model_version": str(i + 1),
            }
        )
    rows.append(
        {
            "as_of_session": sessions[-1],
            "sector": "energy",
            "pair_id": "E-F",
            "test_f1": np.nan,
            "best_baseline_f1": np.nan,
            "beats_baselines": None,
            "model_name": None,
            "model_version": None,
        }
    )
    return pd.DataFrame(rows)


def test_rankings_use_each_pairs_latest_model():
    ranked = rank_models(_history())
    assert ranked["pair_id"].tolist() == ["A-B", "C-D"]
    assert ranked["test_f1"].tolist() == pytest.approx([0.84, 0.9 - 0.068])
    assert ranked["model_version"].tolist() == ["35", "35"] and ranked["rank"].tolist() == [1, 2]


def test_trends_are_means_and_slopes_over_the_last_7_and_30_models():
    trends = model_trends(_history()).set_index("pair_id")
    assert trends.loc["A-B", "f1_slope_7"] == pytest.approx(0.01) and trends.loc["A-B", "f1_slope_30"] == pytest.approx(
        0.01
    )
    assert trends.loc["C-D", "f1_slope_30"] == pytest.approx(-0.002)
    assert trends.loc["A-B", "f1_mean_7"] == pytest.approx(np.mean([0.5 + 0.01 * i for i in range(28, 35)]))
    assert trends.loc["A-B", "n_models"] == 35 and "E-F" not in trends.index


def test_empty_history():
    empty = _history().iloc[0:0]
    assert rank_models(empty).empty and model_trends(empty).empty
