"""Composite scoring: the formula, bounds, monotonicity, selection and ranking."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant.scoring import SCORE_COLUMNS, score_models


def garch_row(pair_id="A-B", delta_aic=0.0, delta_bic=0.0, forecast_ratio=1.0, lb=0.5, arch=0.5, converged=True):
    return {
        "pair_id": pair_id,
        "aic": 1000.0,
        "bic": 1010.0,
        "aic_constant": 1000.0 + delta_aic,
        "bic_constant": 1010.0 + delta_bic,
        "forecast_ratio": forecast_ratio,
        "ljung_box_p": lb,
        "arch_lm_p": arch,
        "converged": converged,
        "n_obs": 1000,
    }


def score_one(sharpe=0.0, n_trades=3, aic_scale="total", **garch):
    """One pair's scores; the seed's total scale unless asked (the per-observation tests are below)."""
    row = garch_row(**garch)
    backtests = pd.DataFrame([{"pair_id": row["pair_id"], "sharpe": sharpe, "n_trades": n_trades}])
    return score_models(pd.DataFrame([row]), backtests, aic_scale=aic_scale).iloc[0]


def test_neutral_model_scores_the_documented_value():
    scores = score_one()
    assert scores[["aic_score", "forecast_score", "backtest_score", "diagnostic_score"]].tolist() == [
        0.5,
        0.5,
        0.5,
        1.0,
    ]
    assert scores.composite == pytest.approx(0.4 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.1 * 1.0)
    assert not scores.selected and scores["rank"] == 1


def test_known_component_values():
    scores = score_one(delta_aic=10.0, delta_bic=30.0, forecast_ratio=0.9, sharpe=1.0, lb=0.025, arch=0.01)
    logistic = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    assert scores.aic_score == pytest.approx(logistic(2.0))
    assert scores.forecast_score == pytest.approx(logistic(1.0))
    assert scores.backtest_score == pytest.approx(logistic(1.0))
    assert scores.diagnostic_score == pytest.approx(0.5 * 0.5 + 0.5 * 0.2)


def test_per_observation_aic_score_values():
    # d = ΔIC per return; the development years' median d (0.077) scores 0.5, no gain scores 0
    assert score_one(delta_aic=77.0, delta_bic=77.0, aic_scale="per_observation").aic_score == pytest.approx(0.5)
    assert score_one(delta_aic=231.0, delta_bic=231.0, aic_scale="per_observation").aic_score == pytest.approx(0.75)
    assert score_one(delta_aic=-40.0, delta_bic=-60.0, aic_scale="per_observation").aic_score == 0.0
    # the same gain per observation on a window half as long scores the same
    half = garch_row(delta_aic=38.5, delta_bic=38.5) | {"n_obs": 500}
    backtests = pd.DataFrame([{"pair_id": "A-B", "sharpe": 0.0, "n_trades": 0}])
    assert score_models(pd.DataFrame([half]), backtests).iloc[0].aic_score == pytest.approx(0.5)
    with pytest.raises(ValueError, match="n_obs"):
        score_models(pd.DataFrame([garch_row()]).drop(columns="n_obs"), backtests)
    with pytest.raises(ValueError, match="aic_scale must be one of"):
        score_models(pd.DataFrame([garch_row()]), backtests, aic_scale="sigmoid")


@settings(max_examples=40, deadline=None)
@given(delta=st.floats(-500, 5000), bump=st.floats(0.5, 500.0))
def test_per_observation_aic_score_is_bounded_and_monotone(delta, bump):
    base = score_one(delta_aic=delta, delta_bic=delta, aic_scale="per_observation").aic_score
    more = score_one(delta_aic=delta + bump, delta_bic=delta + bump, aic_scale="per_observation").aic_score
    assert 0.0 <= base < 1.0 and more >= base


def test_the_aic_score_discriminates_between_real_pairs():
    """Issue 8: σ(ΔIC/10) gave 1.0000 to every real pair tried; the per-observation scale must not."""
    from pairs_assets.quant.stages import garch_stage
    from pairs_assets.settings import EMBEDDED_BARS_FILE
    from pairs_assets_tests.strategies import SEED

    legs = ["KO", "PEP", "XOM", "CVX", "JPM", "BAC", "AAPL", "MSFT", "PG"]
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", *legs])
    closes = closes.loc[:"2022-12-28"].iloc[-SEED.garch_sessions :]
    logs = np.log(closes)
    rows = []
    for y, x in [("KO", "PEP"), ("XOM", "CVX"), ("JPM", "BAC"), ("AAPL", "MSFT"), ("KO", "PG")]:
        slope, intercept = np.polyfit(logs[x].iloc[-60:], logs[y].iloc[-60:], 1)
        rows.append({"pair_id": f"{y}-{x}", "y": y, "x": x, "hedge_ratio": slope, "intercept": intercept})
    garch = garch_stage(closes, pd.DataFrame(rows), SEED)
    backtests = pd.DataFrame({"pair_id": garch["pair_id"], "sharpe": 0.0, "n_trades": 0})
    total = score_models(garch, backtests, aic_scale="total")["aic_score"]
    per_obs = score_models(garch, backtests, aic_scale="per_observation")["aic_score"]
    assert (total > 0.9999).all()  # the seed's scale: saturated for every one of them
    assert per_obs.max() < 0.99 and per_obs.max() - per_obs.min() > 0.1
    assert per_obs.nunique() == len(per_obs)


def test_no_trades_is_neutral_whatever_the_sharpe():
    assert score_one(sharpe=3.0, n_trades=0).backtest_score == 0.5


@settings(max_examples=60, deadline=None)
@given(
    delta=st.floats(-500, 500),
    ratio=st.floats(0.0, 5.0),
    sharpe=st.floats(-10, 10),
    lb=st.floats(0.0, 1.0),
    arch=st.floats(0.0, 1.0),
    bump=st.floats(0.5, 50.0),
)
def test_components_are_bounded_and_monotone(delta, ratio, sharpe, lb, arch, bump):
    base = score_one(delta_aic=delta, delta_bic=delta, forecast_ratio=ratio, sharpe=sharpe, lb=lb, arch=arch)
    for column in SCORE_COLUMNS[1:6]:
        assert 0.0 <= base[column] <= 1.0
    better = [
        score_one(
            delta_aic=delta + bump, delta_bic=delta + bump, forecast_ratio=ratio, sharpe=sharpe, lb=lb, arch=arch
        ),
        score_one(
            delta_aic=delta,
            delta_bic=delta,
            forecast_ratio=max(0.0, ratio - bump / 50),
            sharpe=sharpe,
            lb=lb,
            arch=arch,
        ),
        score_one(delta_aic=delta, delta_bic=delta, forecast_ratio=ratio, sharpe=sharpe + bump, lb=lb, arch=arch),
        score_one(
            delta_aic=delta,
            delta_bic=delta,
            forecast_ratio=ratio,
            sharpe=sharpe,
            lb=min(1.0, lb + bump / 50),
            arch=arch,
        ),
    ]
    for improved in better:
        assert improved.composite >= base.composite


def test_selection_needs_convergence_and_ranking_breaks_ties_by_pair_id():
    strong = {"delta_aic": 100.0, "delta_bic": 100.0, "forecast_ratio": 0.5}
    garch = pd.DataFrame(
        [
            garch_row("C-D", **strong),
            garch_row("A-B", **strong),
            garch_row("E-F", **strong, converged=False),
            garch_row("G-H"),
        ]
    )
    backtests = pd.DataFrame(
        {"pair_id": ["G-H", "E-F", "C-D", "A-B"], "sharpe": [0.0, 2.0, 2.0, 2.0], "n_trades": [0, 4, 4, 4]}
    )
    scores = score_models(garch, backtests, threshold=0.7)
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores.pair_id.tolist() == ["A-B", "C-D", "E-F", "G-H"]
    assert scores["rank"].tolist() == [1, 2, 3, 4]
    assert scores.selected.tolist() == [True, True, False, False]
    assert (scores.composite.iloc[:3] > 0.7).all()


def test_threshold_and_weights_are_the_callers():
    garch = pd.DataFrame([garch_row()])
    backtests = pd.DataFrame([{"pair_id": "A-B", "sharpe": 0.0, "n_trades": 0}])
    assert score_models(garch, backtests, threshold=0.5, aic_scale="total").selected.iloc[0]
    assert not score_models(garch, backtests, threshold=0.5).selected.iloc[0]  # no GARCH gain: aic_score 0
    only_diag = score_models(garch, backtests, weights=(0.0, 0.0, 0.0, 1.0))
    assert only_diag.composite.iloc[0] == 1.0


def test_empty_input_gives_typed_empty_frame():
    garch = pd.DataFrame([garch_row()]).iloc[:0]
    backtests = pd.DataFrame({"pair_id": [], "sharpe": [], "n_trades": []})
    scores = score_models(garch, backtests)
    assert list(scores.columns) == SCORE_COLUMNS and scores.empty
    assert scores.selected.dtype == bool and scores["rank"].dtype == np.int64


def test_bad_inputs_raise_naming_the_field_or_pair():
    garch = pd.DataFrame([garch_row()])
    backtests = pd.DataFrame([{"pair_id": "A-B", "sharpe": 0.0, "n_trades": 1}])
    with pytest.raises(ValueError, match="weights must sum to 1"):
        score_models(garch, backtests, weights=(0.5, 0.3, 0.2, 0.1))
    with pytest.raises(ValueError, match="weights must have 4"):
        score_models(garch, backtests, weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="backtests has no row for pair\\(s\\): \\['A-B'\\]"):
        score_models(garch, backtests.assign(pair_id="X-Y"))
    with pytest.raises(ValueError, match="garch.forecast_ratio is missing or not finite for pair\\(s\\): \\['A-B'\\]"):
        score_models(garch.assign(forecast_ratio=np.nan), backtests)
    with pytest.raises(ValueError, match="garch is missing column\\(s\\): \\['arch_lm_p'\\]"):
        score_models(garch.drop(columns="arch_lm_p"), backtests)
    with pytest.raises(ValueError, match="diag_alpha"):
        score_models(garch, backtests, diag_alpha=0.0)
