"""What the GRU trains on (issue 8 items 1 and 5): a hedge ratio that saw none of the validation and
test slices, and labels against the statistics of the trading config in force at each session."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant import stages
from pairs_assets.quant.cointegration import hedge_ratio
from pairs_assets.quant.features import (
    build_features,
    chronological_split,
    formation_statistics,
    make_labels,
    make_sequences,
    trim_warmup,
)
from pairs_assets.settings import EMBEDDED_BARS_FILE, StrategySettings
from pairs_assets_tests.strategies import SEED

DEFAULT = StrategySettings()


@pytest.fixture(scope="module")
def closes() -> pd.DataFrame:
    """KO and PEP over the default GRU window ending 2022-12-28 (a formation-session stand-in)."""
    frame = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", "KO", "PEP"])
    return frame.loc[:"2022-12-28"].iloc[-DEFAULT.gru_window :]


def formation_pair(closes: pd.DataFrame, window: int) -> SimpleNamespace:
    logs = np.log(closes.iloc[-window:])
    beta, alpha = hedge_ratio(logs["KO"].to_numpy(), logs["PEP"].to_numpy())
    return SimpleNamespace(pair_id="KO-PEP", y="KO", x="PEP", hedge_ratio=beta, intercept=alpha)


def last_training_session(closes, pair, strategy) -> pd.Timestamp:
    config = stages.gru_config(strategy)
    levels = stages.pair_spread(closes, "KO", "PEP", pair.hedge_ratio, pair.intercept)
    ones = pd.Series(1.0, index=levels.index).where(levels.diff().notna())
    labels = make_labels(
        levels,
        "entry_event",
        horizon=strategy.gru_horizon,
        formation_window=strategy.formation_window,
        statistics=stages.period_statistics(levels, strategy.formation_window, strategy.reselect_every),
    )
    _, _, ends = make_sequences(trim_warmup(build_features(levels, ones, ones * 0)), labels, config.seq_len)
    split = chronological_split(len(ends), config.val_frac, config.test_frac, purge=strategy.gru_horizon)
    return ends[split.train.stop - 1], ends[split.val.start], ends[split.test.start], ends


def test_the_seed_trains_on_the_formation_hedge_ratio(closes):
    pair = formation_pair(closes, SEED.formation_window)
    assert stages.gru_hedge(closes, pair, SEED, stages.gru_config(SEED)) == (pair.hedge_ratio, pair.intercept)


def test_the_default_hedge_ratio_saw_none_of_the_validation_and_test_slices(closes):
    pair = formation_pair(closes, DEFAULT.formation_window)
    beta, alpha = stages.gru_hedge(closes, pair, DEFAULT, stages.gru_config(DEFAULT))
    last_train, first_val, first_test, ends = last_training_session(closes, pair, DEFAULT)
    assert last_train < first_val < first_test and len(ends) > 900
    # it is the OLS of the formation_window sessions ending at the last training sequence
    window = np.log(closes.loc[:last_train].iloc[-DEFAULT.formation_window :])
    assert (beta, alpha) == hedge_ratio(window["KO"].to_numpy(), window["PEP"].to_numpy())
    # the formation's β, estimated on the last 252 sessions, saw the whole test slice: it differs
    assert abs(beta - pair.hedge_ratio) > 1e-3
    # point in time: closes after the last training session (the validation and test slices) change nothing
    scrambled = closes.copy()
    later = scrambled.index > last_train
    rng = np.random.default_rng(0)
    scrambled.loc[later] = scrambled.loc[later].to_numpy() * rng.uniform(0.8, 1.2, size=(later.sum(), 2))
    assert stages.gru_hedge(scrambled, pair, DEFAULT, stages.gru_config(DEFAULT)) == (beta, alpha)


def test_the_inputs_use_that_spread_and_the_trading_periods_statistics(closes):
    pair = formation_pair(closes, DEFAULT.formation_window)
    kwargs, params, levels, _ = stages.gru_stage_inputs(closes, pair, DEFAULT)
    beta, alpha = stages.gru_hedge(closes, pair, DEFAULT, stages.gru_config(DEFAULT))
    assert (params["hedge_ratio"], params["intercept"]) == (beta, alpha)
    expected = np.log(closes["KO"]) - beta * np.log(closes["PEP"]) - alpha
    np.testing.assert_allclose(levels.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    statistics = kwargs["label_statistics"]
    trailing = formation_statistics(levels, DEFAULT.formation_window)
    # a session takes the statistics of the last formation at or before it (every 21st row back from the end)
    last = len(levels) - 1
    for row, formation in [
        (last, last),
        (last - 1, last - 21),
        (last - 21, last - 21),
        (last - 22, last - 42),
        (300, 300 - (300 - last) % 21),
    ]:
        pd.testing.assert_series_equal(statistics.iloc[row], trailing.iloc[formation], check_names=False)
    assert statistics.iloc[: DEFAULT.formation_window - 1].isna().all().all()
    assert stages.feature_columns(params) == {
        "feature_garch_mu": params["mu"],
        "feature_garch_omega": params["omega"],
        "feature_garch_alpha": params["alpha"],
        "feature_garch_beta": params["beta"],
        "feature_hedge_ratio": beta,
        "feature_intercept": alpha,
    }


def test_period_statistics_hand_checked():
    s = pd.Series(np.arange(10.0) ** 2)
    assert stages.period_statistics(s, 3, 1) is None  # daily re-selection: the label's trailing statistics
    frozen = stages.period_statistics(s, 3, 4)  # formations at rows 9, 5, 1 (row 1 has no full window)
    trailing = formation_statistics(s, 3)
    assert frozen.iloc[:5].isna().all().all()
    for rows, formation in [(range(5, 9), 5), (range(9, 10), 9)]:
        for row in rows:
            assert frozen.iloc[row].tolist() == trailing.iloc[formation].tolist()


def test_the_gru_split_and_minimum_are_strategy_settings(closes):
    """Issue 12 item 4: the GRU's validation/test shares and minimum sequences are StrategySettings fields."""
    from pairs_assets.quant.features import GRUTrainingError

    strategy = StrategySettings(gru_val_frac=0.25, gru_test_frac=0.15, gru_min_sequences=5000)
    config = stages.gru_config(strategy)
    assert (config.val_frac, config.test_frac) == (0.25, 0.15)
    ((result, *_),) = stages.gru_stage_fit_many(closes, [formation_pair(closes, strategy.formation_window)], strategy)
    assert isinstance(result, GRUTrainingError) and "need at least 5000" in str(result)
    with pytest.raises(ValueError, match="gru_val_frac \\+ gru_test_frac must be below 1"):
        StrategySettings(gru_val_frac=0.5, gru_test_frac=0.5)
