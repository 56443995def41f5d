"""The pair GRU: learns a planted signal, not noise; deterministic; leak-free; each bad input raises."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from arch import arch_model

from pairs_assets.quant.classification import (
    BASELINE_NAMES,
    METRIC_NAMES,
    baseline_metrics,
    classification_metrics,
    select_threshold,
)
from pairs_assets.quant.features import (
    FEATURE_NAMES,
    FeatureScaler,
    build_features,
    chronological_split,
    make_sequences,
    reversion_labels,
    trim_warmup,
)
from pairs_assets.quant.gru import (
    GRUClassifier,
    GRUConfig,
    GRUTrainingError,
    InsufficientSequencesError,
    NaNFeaturesError,
    SingleClassError,
    TrainingDivergedError,
    fit_pair_model,
    predict_proba,
    resolve_device,
    train_gru,
)
from pairs_assets.settings import EMBEDDED_BARS_FILE

#: small and quick where the point is not the defaults
FAST = GRUConfig(hidden=16, max_epochs=30, lr=3e-3)
TINY = GRUConfig(hidden=8, max_epochs=3)


def planted_pair(n: int = 1600, seed: int = 0) -> tuple[pd.Series, pd.Series, pd.Series, np.ndarray]:
    """A spread alternating between regimes of 40-80 sessions.

    Regime 1: white noise around 0 (reverts almost surely); regime 0: a momentum random walk
    (rarely reverts). The "GARCH sigma" input reveals the regime (1.5 vs 1.0, plus noise): a
    model that reads it predicts reversion well above the base rate.
    """
    rng = np.random.default_rng(seed)
    regime = np.zeros(n, dtype=int)
    t, state = 0, 1
    while t < n:
        length = int(rng.integers(40, 81))
        regime[t : t + length] = state
        state, t = 1 - state, t + length
    spread = np.zeros(n)
    step = 0.0
    for t in range(1, n):
        shock = rng.normal()
        if regime[t] == 1:
            spread[t], step = shock, 0.0
        else:
            step = 0.95 * step + 0.3 * shock
            spread[t] = spread[t - 1] + step
    index = pd.bdate_range("2015-01-01", periods=n)
    sigma = pd.Series(1.0 + 0.5 * regime + 0.05 * rng.normal(size=n), index)
    resid = pd.Series(rng.normal(size=n), index)
    return pd.Series(spread, index), sigma, resid, regime


@pytest.fixture(scope="module")
def planted():
    return planted_pair()


@pytest.fixture(scope="module")
def planted_result(planted):
    spread, sigma, resid, _ = planted
    return fit_pair_model(spread, sigma, resid, entry_z=2.0, config=FAST, pair_id="SYN-A", formation_window=60)


def _equal_metrics(a: dict, b: dict) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a) and a.keys() == b.keys()


# --- learning --------------------------------------------------------------------------------------


def test_gru_learns_the_planted_signal(planted_result):
    r = planted_result
    test, majority = r.metrics["test"], r.baseline_metrics["majority"]
    print(
        f"planted: test F1 {test['f1']:.3f} AUC {test['roc_auc']:.3f}; "
        + ", ".join(f"{name} F1 {m['f1']:.3f}" for name, m in r.baseline_metrics.items())
    )
    assert test["f1"] > majority["f1"] + 0.15
    assert test["roc_auc"] > 0.8
    assert test["f1"] > r.baseline_metrics["z_rule"]["f1"]
    assert set(r.metrics) == {"train", "val", "test"}
    assert set(r.baseline_metrics) == set(BASELINE_NAMES)
    for values in [*r.metrics.values(), *r.baseline_metrics.values()]:
        assert tuple(values) == METRIC_NAMES
    assert r.beats_baselines == all(test["f1"] > b["f1"] for b in r.baseline_metrics.values())


def test_gru_does_not_learn_shuffled_labels(planted):
    spread, sigma, resid, _ = planted
    features = trim_warmup(build_features(spread, sigma, resid))
    X, y, _ = make_sequences(features, reversion_labels(spread), 10)
    y = np.random.default_rng(7).permutation(y)
    split = chronological_split(len(X), purge=5)
    tr, va, te = (slice(r.start, r.stop) for r in (split.train, split.val, split.test))
    trained = train_gru(X[tr], y[tr], X[va], y[va], FAST)
    auc = classification_metrics(y[te], predict_proba(trained.model, X[te]))["roc_auc"]
    print(f"shuffled labels: test AUC {auc:.3f}")
    assert abs(auc - 0.5) < 0.08


# --- result contents -------------------------------------------------------------------------------


def test_result_is_complete_and_model_is_self_contained(planted, planted_result):
    spread, sigma, resid, _ = planted
    r = planted_result
    assert r.pair_id == "SYN-A" and r.feature_names == FEATURE_NAMES
    assert r.input_example.dtype == np.float32 and r.input_example.shape == (5, 10, len(FEATURE_NAMES))
    assert 1 <= r.best_epoch <= len(r.history) <= FAST.max_epochs
    assert [h["epoch"] for h in r.history] == list(range(1, len(r.history) + 1))
    assert r.stopped_early == (len(r.history) < FAST.max_epochs)
    best = min(r.history, key=lambda h: h["val_loss"])
    assert best["epoch"] == r.best_epoch
    assert 0.0 < r.threshold < 1.0
    assert r.device == str(resolve_device("auto"))
    # the model takes raw features and returns probabilities: the scaler is inside
    np.testing.assert_array_equal(r.model.feature_mean.numpy(), r.scaler.mean.astype(np.float32))
    x = torch.from_numpy(r.input_example)
    with torch.no_grad():
        probs = r.model(x)
        assert torch.equal(probs, torch.sigmoid(r.model.logits(x)))
    assert ((probs >= 0) & (probs <= 1)).all() and not r.model.training
    flat = r.flat_metrics()
    assert flat["test_f1"] == r.metrics["test"]["f1"]
    assert flat["baseline_logistic_roc_auc"] == r.baseline_metrics["logistic"]["roc_auc"]
    params = r.params()
    assert params["gru_hidden"] == 16 and params["label_horizon"] == 5 and params["split_purge"] == 5
    assert params["features"] == ",".join(FEATURE_NAMES)


def test_split_is_purged_and_scaler_fitted_on_train_only(planted, planted_result):
    spread, sigma, resid, _ = planted
    r = planted_result
    pos = {s: i for i, s in enumerate(spread.index.strftime("%Y-%m-%d"))}
    sessions = r.slice_sessions
    # a train label looks 5 sessions ahead: the first validation label comes after that window
    assert pos[sessions["val"][0]] - pos[sessions["train"][1]] == r.horizon + 1
    assert pos[sessions["test"][0]] - pos[sessions["val"][1]] == r.horizon + 1
    assert sessions["test"][1] == spread.index[-1 - r.horizon].strftime("%Y-%m-%d")
    features = trim_warmup(build_features(spread, sigma, resid))
    expected = FeatureScaler.fit(features.loc[: sessions["train"][1]])
    np.testing.assert_allclose(r.scaler.mean, expected.mean)
    np.testing.assert_allclose(r.scaler.std, expected.std)


def test_validation_and_test_values_do_not_move_the_scaler(planted):
    spread, sigma, resid, _ = planted
    a = fit_pair_model(spread, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    cut = spread.index.get_loc(pd.Timestamp(a.slice_sessions["train"][1])) + 1
    changed = spread.copy()
    changed.iloc[cut:] = changed.iloc[cut:] * 3 + 10
    b = fit_pair_model(changed, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    np.testing.assert_array_equal(a.scaler.mean, b.scaler.mean)
    np.testing.assert_array_equal(a.scaler.std, b.scaler.std)


# --- determinism -----------------------------------------------------------------------------------


def test_same_inputs_give_same_weights_and_metrics(planted):
    spread, sigma, resid, _ = planted
    torch.manual_seed(123)  # global RNG state must not matter …
    a = fit_pair_model(spread, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    state_after = torch.get_rng_state()
    torch.manual_seed(999)
    b = fit_pair_model(spread, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert a.history == b.history and a.threshold == b.threshold
    for part in a.metrics:
        assert _equal_metrics(a.metrics[part], b.metrics[part])
    for name in a.baseline_metrics:
        assert _equal_metrics(a.baseline_metrics[name], b.baseline_metrics[name])
    # … and training leaves it alone (forked RNG), as it leaves the thread count
    torch.manual_seed(123)
    fit_pair_model(spread, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    assert torch.equal(torch.get_rng_state(), state_after)
    c = fit_pair_model(
        spread, sigma, resid, 2.0, GRUConfig(hidden=8, max_epochs=3, seed=1), pair_id="SYN-A", formation_window=60
    )
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


# --- bad inputs ------------------------------------------------------------------------------------


def test_too_little_history(planted):
    spread, sigma, resid, _ = planted
    with pytest.raises(
        InsufficientSequencesError,
        match=r"pair SYN-A: 136 labelled sequences .* need at least 250: provide at least 314 sessions",
    ):
        fit_pair_model(
            spread.iloc[:200], sigma.iloc[:200], resid.iloc[:200], 2.0, TINY, pair_id="SYN-A", formation_window=60
        )
    with pytest.raises(InsufficientSequencesError, match="pair SYN-A: no session has all"):
        fit_pair_model(
            spread.iloc[:20], sigma.iloc[:20], resid.iloc[:20], 2.0, TINY, pair_id="SYN-A", formation_window=60
        )


def test_single_class_slice_names_the_slice(planted):
    spread, sigma, resid, _ = planted
    trending = spread.copy()
    trending.iloc[1100:] = np.arange(len(trending) - 1100) * 1.0  # steady climb: never reverts
    with pytest.raises(SingleClassError, match=r"pair SYN-A: the test slice .* single label class \(0\)"):
        fit_pair_model(trending, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    ramp = pd.Series(np.arange(len(spread)) * 1.0, spread.index)
    with pytest.raises(SingleClassError, match="the train slice"):
        fit_pair_model(ramp, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)


def test_nan_features_name_pair_and_field(planted):
    spread, sigma, resid, _ = planted
    broken = resid.copy()
    broken.iloc[700] = np.nan
    with pytest.raises(NaNFeaturesError, match=r"pair SYN-A: feature\(s\) garch_std_resid NaN"):
        fit_pair_model(spread, sigma, broken, 2.0, TINY, pair_id="SYN-A", formation_window=60)
    gap = spread.copy()
    gap.iloc[900] = np.nan
    with pytest.raises(NaNFeaturesError, match="pair SYN-A: feature.*spread, lag_1"):
        fit_pair_model(gap, sigma, resid, 2.0, TINY, pair_id="SYN-A", formation_window=60)


def test_nan_loss_raises_training_diverged(planted):
    spread, sigma, resid, _ = planted
    X, y, _ = make_sequences(trim_warmup(build_features(spread, sigma, resid)), reversion_labels(spread), 10)
    X = X.copy()
    X[3, -1, 0] = np.nan  # train_gru trusts its inputs; fit_pair_model checks them first
    with pytest.raises(TrainingDivergedError, match=r"pair SYN-A: training loss became nan at epoch 1"):
        train_gru(X[:300], y[:300], X[300:400], y[300:400], TINY, pair_id="SYN-A")
    for error in (InsufficientSequencesError, SingleClassError, NaNFeaturesError, TrainingDivergedError):
        assert issubclass(error, GRUTrainingError) and issubclass(error, ValueError)


def test_config_is_validated():
    assert GRUConfig() == GRUConfig(10, 64, 0.255, 3e-4, 32, 50, 5, 42, "auto")
    for bad in (
        {"dropout": 1.0},
        {"lr": 0.0},
        {"lr": float("inf")},
        {"val_frac": 0.5, "test_frac": 0.5},
        {"device": "tpu"},
    ):
        with pytest.raises(ValueError, match="invalid GRUConfig"):
            GRUConfig(**bad)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- classification helpers ------------------------------------------------------------------------


def test_classification_metrics_known_answers():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    m = classification_metrics(y, p, threshold=0.5)
    # predictions 0 1 1 0 1 0: tp 2, fp 1, fn 1, tn 2
    assert m == pytest.approx({"f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3, "accuracy": 4 / 6, "roc_auc": 8 / 9})
    single = classification_metrics(np.ones(4), np.array([0.2, 0.4, 0.6, 0.8]))
    assert math.isnan(single["roc_auc"]) and single["recall"] == 0.5
    assert classification_metrics(np.array([0, 1]), np.array([0, 0]))["precision"] == 0.0
    with pytest.raises(ValueError, match="2 labels but 3 scores"):
        classification_metrics(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


def test_threshold_maximises_f1():
    y = np.array([0, 0, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.35, 0.3, 0.4, 0.9, 0.8, 0.7])
    best = select_threshold(y, p)
    grid = {t: classification_metrics(y, p, t)["f1"] for t in np.unique(p)}
    assert classification_metrics(y, p, best)["f1"] == max(grid.values())
    assert best == 0.3
    assert select_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3])) == 0.5


def test_baselines_on_hand_made_sequences():
    rng = np.random.default_rng(0)
    n_feat = len(FEATURE_NAMES)
    X = rng.normal(size=(60, 3, n_feat)).astype(np.float32)
    z_col = FEATURE_NAMES.index("z_7")
    y = (X[:, -1, 0] > 0).astype(float)  # the last step's first feature decides the label
    X[:, -1, z_col] = np.where(np.arange(60) % 2 == 0, 2.5, 1.0)
    scaler = FeatureScaler.fit(X[:, -1, :], FEATURE_NAMES)
    out = baseline_metrics(X[:30], y[:30], X[30:45], y[30:45], X[45:], y[45:], scaler=scaler, entry_z=2.0)
    majority_class = 1.0 if y[:30].mean() >= 0.5 else 0.0
    assert out["majority"] == classification_metrics(y[45:], np.full(15, majority_class))
    assert out["logistic"]["accuracy"] >= 0.8  # a linear rule on the last step, learnable
    assert out["z_rule"] == classification_metrics(y[45:], (np.arange(45, 60) % 2 == 0).astype(float))
    explicit = baseline_metrics(
        X[:30], y[:30], X[30:45], y[30:45], X[45:], y[45:], scaler=scaler, entry_z=2.0, z_test=np.full(15, 2.0)
    )
    assert explicit["z_rule"]["recall"] == 0.0  # |z| must exceed the entry level strictly


# --- real data -------------------------------------------------------------------------------------


def test_fits_a_real_pair_ko_pep():
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", "KO", "PEP"])
    logs = np.log(closes.iloc[-1300:])
    slope, intercept = np.polyfit(logs["PEP"], logs["KO"], 1)
    spread = logs["KO"] - slope * logs["PEP"] - intercept
    garch = arch_model(100 * spread.diff().dropna(), vol="GARCH", p=1, q=1).fit(disp="off")
    r = fit_pair_model(
        spread,
        garch.conditional_volatility,
        garch.std_resid,
        2.0,
        GRUConfig(hidden=16, max_epochs=5),
        pair_id="KO-PEP",
        formation_window=60,  # the seed's formation window
    )
    # entry_event label: the first labelled session needs a full formation window (60 sessions)
    assert r.n_sequences == 1300 - (60 - 1) - 5 and r.slice_sessions["test"][1] == "2022-12-20"
    assert r.label == "entry_event" and (r.formation_window, r.exit_z, r.stop_z, r.rule_z_window) == (60, 0.5, 3.5, 60)
    params = r.params()
    assert params["label"] == "entry_event" and params["label_stop_z"] == 3.5
    assert params["feature_rows"].startswith("session closes")
    if r.entry_metrics:  # test sessions with |z| >= entry_z, where the gate acts
        assert r.flat_metrics()["test_entry_n"] == r.entry_metrics["n"] >= 10
    old = fit_pair_model(
        spread,
        garch.conditional_volatility,
        garch.std_resid,
        2.0,
        GRUConfig(hidden=16, max_epochs=2),
        pair_id="KO-PEP",
        label="reversion",
    )
    assert old.n_sequences == 1300 - 20 - 9 - 5 and old.rule_z_window == 20 and old.params()["label"] == "reversion"
    assert 0.2 < r.positive_rate["train"] < 0.9
    assert all(math.isfinite(v) for v in r.flat_metrics().values())
    assert isinstance(r.model, GRUClassifier)
