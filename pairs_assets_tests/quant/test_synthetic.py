"""The synthetic panel generator: determinism, naming, and the planted structure."""

import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant.cointegration import half_life, hedge_ratio
from pairs_assets_tests.synthetic import garch_innovations, synthetic_panel


def test_same_seed_same_panel_and_names():
    closes, pairs = synthetic_panel(2, 3, 50, seed=5)
    again, pairs_again = synthetic_panel(2, 3, 50, seed=5)
    pd.testing.assert_frame_equal(closes, again)
    assert pairs == pairs_again == [("CY00", "CX00"), ("CY01", "CX01")]
    assert list(closes.columns) == ["CX00", "CX01", "CY00", "CY01", "RW00", "RW01", "RW02"]
    assert closes.index[0] == pd.Timestamp("2000-01-03") and (closes.index.dayofweek < 5).all()
    assert (closes.to_numpy() > 0).all()
    assert not closes.equals(synthetic_panel(2, 3, 50, seed=6)[0])


def test_planted_spread_has_the_requested_half_life():
    closes, [(y_sym, x_sym)] = synthetic_panel(1, 0, 5000, seed=2, half_life=10.0)
    y_log, x_log = np.log(closes[y_sym]), np.log(closes[x_sym])
    beta, intercept = hedge_ratio(y_log, x_log)
    assert half_life(y_log - intercept - beta * x_log) == pytest.approx(10.0, rel=0.2)


def test_garch_innovations_cluster():
    innovations = garch_innovations(np.random.default_rng(0), 20_000, (1e-6, 0.08, 0.9))
    assert np.var(innovations) == pytest.approx(1e-6 / 0.02, rel=0.2)
    squared = innovations**2
    assert np.corrcoef(squared[1:], squared[:-1])[0, 1] > 0.05  # volatility clustering


def test_bad_arguments_raise_naming_the_field():
    with pytest.raises(ValueError, match="garch"):
        synthetic_panel(1, 0, 100, seed=0, garch=(1e-6, 0.5, 0.6))
    with pytest.raises(ValueError, match="half_life"):
        synthetic_panel(1, 0, 100, seed=0, half_life=0.0)
    with pytest.raises(ValueError, match="n_random_walks"):
        synthetic_panel(1, -1, 100, seed=0)
