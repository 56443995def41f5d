"""Batched GRU training and inference (issue 10 item 6): the pair as the batch dimension.

``fit_pair_models`` must give each pair what ``fit_pair_model`` gives it alone (float32 rounding
apart), the same bits whatever other pairs share the call, deterministically, and keep one pair's
failure to itself; ``StackedGRU`` must run many trained models in one forward pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pairs_assets.quant.features import FEATURE_NAMES
from pairs_assets.quant.gru import (
    GRUClassifier,
    GRUConfig,
    InsufficientSequencesError,
    PairModelResult,
    StackedGRU,
    fit_pair_model,
    fit_pair_models,
    predict_proba,
    predict_proba_many,
    train_gru_many,
)
from pairs_assets_tests.quant.test_gru import planted_pair

#: small and quick; dropout on, so the replayed dropout draws are exercised
SMALL = GRUConfig(hidden=12, max_epochs=6, lr=3e-3, patience=2, device="cpu")
LABEL = {"entry_z": 2.0, "formation_window": 60}


def _inputs(seed: int, n: int = 1600) -> dict:
    spread, sigma, resid, _ = planted_pair(n=n, seed=seed)
    return {"spread": spread, "garch_sigma": sigma, "garch_std_resid": resid, "pair_id": f"SYN-{seed}", **LABEL}


@pytest.fixture(scope="module")
def pairs():
    return [_inputs(seed) for seed in range(3)]


@pytest.fixture(scope="module")
def batched(pairs):
    return fit_pair_models(pairs, SMALL)


def test_batched_training_matches_one_at_a_time(pairs, batched):
    for item, many in zip(pairs, batched):
        assert isinstance(many, PairModelResult), many
        kwargs = {k: v for k, v in item.items() if k not in ("spread", "garch_sigma", "garch_std_resid", "entry_z")}
        one = fit_pair_model(
            item["spread"], item["garch_sigma"], item["garch_std_resid"], item["entry_z"], SMALL, **kwargs
        )
        # same epochs, same early stopping, losses equal to float32 rounding
        assert [h["epoch"] for h in many.history] == [h["epoch"] for h in one.history]
        assert many.best_epoch == one.best_epoch and many.stopped_early == one.stopped_early
        for a, b in zip(many.history, one.history):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        for key, value in one.model.state_dict().items():
            torch.testing.assert_close(many.model.state_dict()[key], value, atol=1e-4, rtol=0)
        test_x = many.input_example
        np.testing.assert_allclose(predict_proba(many.model, test_x), predict_proba(one.model, test_x), atol=1e-5)
        # the same metrics within a documented tolerance (a probability at the threshold may flip one label)
        assert many.threshold == pytest.approx(one.threshold, abs=1e-4)
        for part in ("train", "val", "test"):
            for metric in ("roc_auc", "f1", "accuracy"):
                assert many.metrics[part][metric] == pytest.approx(one.metrics[part][metric], abs=0.01), (part, metric)
        assert many.baseline_metrics == one.baseline_metrics and many.split == one.split
        assert many.beats_baselines == one.beats_baselines


def test_a_pair_gets_the_same_bits_alone_or_with_others(pairs, batched):
    alone = fit_pair_models([pairs[1]], SMALL)[0]
    reordered = fit_pair_models([pairs[2], pairs[1]], SMALL)[1]
    for other in (alone, reordered):
        for key, value in batched[1].model.state_dict().items():
            assert torch.equal(other.model.state_dict()[key], value), key
        assert other.history == batched[1].history and other.threshold == batched[1].threshold
        assert other.metrics == batched[1].metrics


def test_deterministic_and_leaves_the_global_rng_alone(pairs, batched):
    torch.manual_seed(5)  # the global RNG state does not matter …
    again = fit_pair_models(pairs, SMALL)
    x = np.random.default_rng(1).normal(size=(40, SMALL.seq_len, len(FEATURE_NAMES))).astype(np.float32)
    y = (np.arange(40) % 2).astype(np.float32)
    state = torch.get_rng_state()
    train_gru_many([(x, y, x, y)] * 2, SMALL)
    assert torch.equal(torch.get_rng_state(), state)  # … and training leaves it alone (forked RNG)
    for a, b in zip(again, batched):
        assert a.history == b.history and a.metrics == b.metrics
        for key, value in a.model.state_dict().items():
            assert torch.equal(value, b.model.state_dict()[key]), key


def test_one_pairs_failure_stays_its_own(pairs, batched):
    short = _inputs(7, n=200)
    out = fit_pair_models([short, pairs[0]], SMALL)
    assert isinstance(out[0], InsufficientSequencesError) and "SYN-7" in str(out[0])
    assert isinstance(out[1], PairModelResult) and out[1].metrics == batched[0].metrics
    with pytest.raises(TypeError, match="unknown field"):
        fit_pair_models([{**pairs[0], "horizn": 5}], SMALL)
    assert fit_pair_models([], SMALL) == [] and train_gru_many([], SMALL) == []


def test_stacked_forward_equals_each_models_own_forward(batched):
    torch.manual_seed(0)
    models = [r.model for r in batched] + [GRUClassifier(len(FEATURE_NAMES), 12, 0.2)]
    x = np.random.default_rng(0).normal(size=(len(models), 7, SMALL.seq_len, len(FEATURE_NAMES))).astype(np.float32)
    together = predict_proba_many(models, x)
    assert together.shape == (len(models), 7)
    for p, model in enumerate(models):
        np.testing.assert_allclose(together[p], predict_proba(model, x[p]), atol=2e-6)
    # one sequence per model (the signal job's shape), and a model's score independent of the stack
    # (to float32 rounding: the CPU kernels may block a batch of another shape differently — seen under load)
    single = predict_proba_many(StackedGRU.from_modules(models), x[:, 0])
    np.testing.assert_allclose(single, together[:, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(predict_proba_many(models[1:2], x[1:2, 0])[0], single[1], rtol=1e-6, atol=1e-7)
    # round trip of the weights
    back = StackedGRU.from_modules(models).unstack(1)
    for key, value in models[1].state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    with pytest.raises(ValueError, match="not a GRUClassifier"):
        StackedGRU.from_modules([torch.nn.Linear(3, 1)])
    with pytest.raises(ValueError, match="P=4"):
        predict_proba_many(models, x[:2])


def test_real_pairs_batched_equal_one_at_a_time():
    """KO-PEP and XOM-CVX (embedded closes, 1,300 sessions, arch GARCH features): the same epochs
    and metrics batched as one at a time, probabilities to float32 rounding."""
    from arch import arch_model

    from pairs_assets.settings import EMBEDDED_BARS_FILE

    closes = pd.read_csv(
        EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", "KO", "PEP", "XOM", "CVX"]
    )
    items = []
    for y, x in (("KO", "PEP"), ("XOM", "CVX")):
        logs = np.log(closes[[y, x]].dropna().iloc[-1300:])
        slope, intercept = np.polyfit(logs[x], logs[y], 1)
        spread = logs[y] - slope * logs[x] - intercept
        garch = arch_model(100 * spread.diff().dropna(), vol="GARCH", p=1, q=1).fit(disp="off")
        items.append(
            {
                "spread": spread,
                "garch_sigma": garch.conditional_volatility,
                "garch_std_resid": garch.std_resid,
                "pair_id": f"{y}-{x}",
                **LABEL,
            }
        )
    config = GRUConfig(hidden=16, max_epochs=4, device="cpu")
    for item, many in zip(items, fit_pair_models(items, config)):
        one = fit_pair_model(
            item["spread"],
            item["garch_sigma"],
            item["garch_std_resid"],
            2.0,
            config,
            pair_id=item["pair_id"],
            formation_window=60,
        )
        assert many.best_epoch == one.best_epoch and len(many.history) == len(one.history)
        np.testing.assert_allclose(
            predict_proba(many.model, many.input_example), predict_proba(one.model, one.input_example), atol=1e-5
        )
        assert many.threshold == pytest.approx(one.threshold, abs=1e-4)
        for metric in ("f1", "roc_auc"):
            assert many.metrics["test"][metric] == pytest.approx(one.metrics["test"][metric], abs=0.01)
