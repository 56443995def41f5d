"""The signal job's GRU path for a whole sector at once (issue 10 item 6): the same inputs as pair by
pair, bit for bit, and one forward pass through every pair's own model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pairs_assets.assets.trading_signals import gru_probabilities
from pairs_assets.quant import signals as sig
from pairs_assets.quant.features import FEATURE_NAMES, build_features, build_features_wide
from pairs_assets.quant.garch import filter_fixed, filter_fixed_many
from pairs_assets.quant.gru import GRUClassifier
from pairs_assets.settings import EMBEDDED_BARS_FILE
from pairs_assets_tests.benchmarks.bench_live import synthetic_pairs


@pytest.fixture(scope="module")
def real_spreads():
    closes = pd.read_csv(
        EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", "KO", "PEP", "XOM", "CVX", "PG"]
    )
    logs = np.log(closes.dropna().iloc[-300:])
    return pd.DataFrame(
        {
            "KO-PEP": logs["KO"] - 0.8 * logs["PEP"],
            "XOM-CVX": logs["XOM"] - 1.1 * logs["CVX"],
            "PG-KO": logs["PG"] - 0.9 * logs["KO"],
            "flat": 0.0 * logs["KO"] + 1.0,
        }
    )


def test_filter_fixed_many_equals_filter_fixed(real_spreads):
    changes = real_spreads.diff().to_numpy().T
    changes[1, 40] = np.nan  # a gap: the variance evolves without a shock
    params = dict(
        mu=[0.0, 1e-4, -2e-4, 0.0],
        omega=[1e-6, 2e-6, 1e-6, 1e-6],
        alpha=[0.05, 0.1, 0.6, 0.05],
        beta=[0.9, 0.85, 0.6, 0.9],
        fallback_sigma=[0.01, 0.01, 0.01, 0.01],
    )
    sigma, resid = filter_fixed_many(changes, **params)
    for p in range(len(changes)):
        one = filter_fixed(changes[p], **{k: v[p] for k, v in params.items()})
        np.testing.assert_array_equal(sigma[p], one[0])
        np.testing.assert_array_equal(resid[p], one[1])


def test_build_features_wide_equals_build_features(real_spreads):
    rng = np.random.default_rng(0)
    sigma = pd.DataFrame(
        rng.uniform(0.5, 2, real_spreads.shape), index=real_spreads.index, columns=real_spreads.columns
    )
    resid = pd.DataFrame(rng.normal(size=real_spreads.shape), index=real_spreads.index, columns=real_spreads.columns)
    wide = build_features_wide(real_spreads.to_numpy(), sigma.to_numpy(), resid.to_numpy())
    assert wide.shape == (real_spreads.shape[1], len(real_spreads), len(FEATURE_NAMES))
    for p, column in enumerate(real_spreads.columns):  # the flat spread exercises RSI 50 and z NaN
        one = build_features(real_spreads[column], sigma[column], resid[column]).to_numpy()
        np.testing.assert_array_equal(wide[p], one, err_msg=column)
    with pytest.raises(ValueError, match="one shape"):
        build_features_wide(real_spreads.to_numpy(), sigma.to_numpy()[:-1], resid.to_numpy())


def test_gru_sequences_equal_gru_sequence_bit_for_bit():
    inputs, _ = synthetic_pairs(12)
    inputs[3].history = inputs[3].history.iloc[5:]  # another index: its own group
    inputs[7].history = inputs[7].history.iloc[-25:]  # too short for a GRU window
    together = sig.gru_sequences(inputs, 10)
    for pair, sequence in zip(inputs, together):
        try:
            alone = sig.gru_sequence(pair, 10)
        except sig.SignalInputError as exc:
            assert isinstance(sequence, sig.SignalInputError) and str(sequence) == str(exc)
            continue
        assert sequence.dtype == np.float32
        np.testing.assert_array_equal(sequence, alone)
    assert isinstance(together[7], sig.SignalInputError)


class _Registry:
    def __init__(self, models):
        self.models = models

    def load_model(self, name, version):
        if version == "missing":
            raise FileNotFoundError("no such version")
        return self.models[version]


class _Opaque:
    """A module the registry could return that has no GRUClassifier weights (not stackable)."""

    def __init__(self, model):
        self.model = model

    def eval(self):
        return self

    def __call__(self, x):
        return self.model(x)


def test_one_forward_pass_equals_each_models_own(monkeypatch):
    inputs, _ = synthetic_pairs(8)
    torch.manual_seed(0)
    models = {str(k): GRUClassifier(len(FEATURE_NAMES), 16, 0.2).eval() for k in range(8)}
    for k, pair in enumerate(inputs):
        pair.params = type(pair.params)(**{**vars(pair.params), "model_name": "m", "model_version": str(k)})
    inputs[2].params = type(inputs[2].params)(**{**vars(inputs[2].params), "model_version": "missing"})
    probabilities, flags, failures = gru_probabilities(inputs, _Registry(models), 10)
    assert flags[inputs[2].params.pair_id] == ["model_unavailable"] and "m/missing" in failures
    assert probabilities[inputs[2].params.pair_id] is None
    opaque = {k: _Opaque(m) for k, m in models.items()}  # the per-model path
    per_model, _, _ = gru_probabilities(inputs, _Registry(opaque), 10)
    for k, pair in enumerate(inputs):
        if k == 2:
            continue
        with torch.no_grad():
            expected = float(models[str(k)](torch.as_tensor(sig.gru_sequence(pair, 10)[None]))[0])
        assert per_model[pair.params.pair_id] == expected
        assert probabilities[pair.params.pair_id] == pytest.approx(expected, abs=1e-6)
        assert math.isfinite(probabilities[pair.params.pair_id])
