"""A GRU that predicts whether the trade the entry rule opens on a pair's spread ends at its exit.

The default target (:func:`~pairs_assets.quant.features.entry_event_labels`) is the entry rule's own
event: the spread's z against the formation statistics a config written at t would hold comes back
inside the exit band within ``horizon`` sessions before it closes beyond the stop. The original
design's target (reversion halfway to a trailing 20-session mean,
:func:`~pairs_assets.quant.features.reversion_labels`) stays available as ``label="reversion"``.

Pipeline (:func:`fit_pair_model`): features → labels → sequences → chronological split with purge
→ scaler fitted on the training slice → GRU trained with early stopping on validation loss →
threshold chosen on validation → metrics on train / validation / test and baselines on test.

Many pairs at once (:func:`fit_pair_models`, :func:`train_gru_many`): the pairs' GRUs trained as
one :class:`StackedGRU`, the pair as the batch dimension — each pair's result bit-identical alone or
in any batch, equal to :func:`fit_pair_model` up to float32 rounding; :func:`predict_proba_many`
runs many trained models in one forward pass (the signal job's sector).

The model takes *raw* features ``[batch, seq_len, n_features]`` float32 and returns probabilities:
the train-only scaler is stored in it as buffers, so a model loaded back from MLflow needs nothing
else. Training is seeded and deterministic (same inputs and machine → same weights and metrics).

References: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder" (2014) for the
GRU; Prechelt, "Early Stopping — But When?" (1998); López de Prado, *Advances in Financial Machine
Learning* (2018), ch. 7, for purging overlapping labels at split boundaries.

Pure numpy/pandas/torch; no dagster, no resources.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from pairs_assets.quant.classification import (
    baseline_metrics,
    classification_metrics,
    select_threshold,
)
from pairs_assets.quant.features import (
    DEFAULT_HORIZON,
    DEFAULT_MEAN_WINDOW,
    DEFAULT_EXIT_Z,
    DEFAULT_FORMATION_WINDOW,
    DEFAULT_REVERSION_FRACTION,
    DEFAULT_STOP_Z,
    FEATURE_NAMES,
    ChronologicalSplit,
    FeatureScaler,
    GRUTrainingError,
    InsufficientSequencesError,
    NaNFeaturesError,
    SingleClassError,
    TrainingDivergedError,
    build_features,
    chronological_split,
    make_labels,
    make_sequences,
    min_sessions_for,
    pair_prefix,
    rolling_zscore,
    session_label as _session,
    trim_warmup,
)

__all__ = [
    "DEFAULT_MIN_SEQUENCES",
    "DEFAULT_TARGET_SEQUENCES",
    "GRUClassifier",
    "GRUConfig",
    "GRUTrainingError",
    "InsufficientSequencesError",
    "NaNFeaturesError",
    "PairModelResult",
    "SingleClassError",
    "TrainResult",
    "TrainingDivergedError",
    "StackedGRU",
    "fit_pair_model",
    "fit_pair_models",
    "predict_proba",
    "predict_proba_many",
    "resolve_device",
    "train_gru",
    "train_gru_many",
]

#: Hard floor: below this many sequences the 20 % test slice is too small to score (≈ 50).
DEFAULT_MIN_SEQUENCES = 250
#: What the training window should provide where history allows (see ``min_sessions_for``).
DEFAULT_TARGET_SEQUENCES = 1000


@dataclass(frozen=True)
class GRUConfig:
    """Hyperparameters of the GRU and its training (defaults from the seed design: preset ``seed`` in ``settings.PRESETS``).

    Attributes
    ----------
    seq_len : int
        Sessions per input sequence.
    hidden : int
        GRU hidden units.
    dropout : float
        Dropout before the linear head.
    lr : float
        Adam's learning rate.
    batch_size, max_epochs, patience : int
        Minibatch size; at most ``max_epochs``, stopping after ``patience`` epochs without a lower
        validation loss.
    seed : int
        Seeds initialisation, dropout and batch order.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    val_frac, test_frac : float
        Fractions of the sequences in the validation and test slices.
    grad_clip : float
        Gradient-norm clip.
    cpu_threads : int
        Torch threads on CPU.
    """

    seq_len: int = 10
    hidden: int = 64
    dropout: float = 0.255
    lr: float = 3e-4
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5
    seed: int = 42
    device: str = "auto"
    val_frac: float = 0.2
    test_frac: float = 0.2
    grad_clip: float = 1.0
    #: intra-op threads while training on CPU: 1 is the fastest for a model this small (measured)
    #: and gives the same floating-point sums on any machine, whatever its core count
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        checks = {
            "seq_len": self.seq_len >= 2,
            "hidden": self.hidden >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "lr": math.isfinite(self.lr) and self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "max_epochs": self.max_epochs >= 1,
            "patience": self.patience >= 1,
            "val_frac": 0.0 < self.val_frac < 1.0,
            "test_frac": 0.0 < self.test_frac < 1.0 and self.val_frac + self.test_frac < 1.0,
            "grad_clip": self.grad_clip > 0,
            "cpu_threads": self.cpu_threads >= 1,
            "device": self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid GRUConfig field(s) {bad}: {self}")

    def as_params(self) -> dict[str, Any]:
        return {f"gru_{k}": v for k, v in asdict(self).items()}


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device a config names.

    Parameters
    ----------
    device : str, default "auto"
        ``auto`` → CUDA when present, else CPU; anything else as torch reads it.

    Returns
    -------
    torch.device
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class GRUClassifier(nn.Module):
    """GRU → dropout → linear → sigmoid over raw features, the train-only scaler folded in.

    ``forward(x)``: ``x`` float32 ``[batch, seq_len, n_features]`` of raw features in
    :data:`~pairs_assets.quant.features.FEATURE_NAMES` order → probability of the label event (1)
    ``[batch]``. ``logits(x)`` gives the pre-sigmoid scores (for training with
    ``BCEWithLogitsLoss``).

    Parameters
    ----------
    n_features : int
    hidden : int, default 64
    dropout : float, default 0.255
    feature_mean, feature_std : ndarray, optional
        The train-only scaler, folded into the model (raw features in, probability out); None: no
        scaling.
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 64,
        dropout: float = 0.255,
        feature_mean: np.ndarray | None = None,
        feature_std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        mean = np.zeros(n_features) if feature_mean is None else np.asarray(feature_mean)
        std = np.ones(n_features) if feature_std is None else np.asarray(feature_std)
        self.register_buffer("feature_mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("feature_std", torch.as_tensor(std, dtype=torch.float32).clone())
        self.gru = nn.GRU(input_size=n_features, hidden_size=hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x - self.feature_mean) / self.feature_std
        out, _ = self.gru(scaled)
        return self.head(self.dropout(out[:, -1, :])).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


@dataclass
class TrainResult:
    """A trained model (best validation epoch restored, eval mode, on CPU) and its history.

    Attributes
    ----------
    model : GRUClassifier
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``.
    best_epoch : int
    stopped_early : bool
    device : str
        Where it was trained.
    seconds : float
        Training wall time.
    """

    model: GRUClassifier
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    device: str
    seconds: float


@contextlib.contextmanager
def _deterministic(seed: int, device: torch.device, cpu_threads: int) -> Iterator[None]:
    """Seed torch inside a forked RNG, enable deterministic kernels, fix the CPU thread count;
    restore everything after."""
    cuda = device.type == "cuda"
    if cuda:
        # cuBLAS needs this before its first use to be deterministic (PyTorch reproducibility notes)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_num_threads(),
    )
    devices = [device.index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.set_num_threads(cpu_threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.backends.cudnn.deterministic = previous[2]
            torch.backends.cudnn.benchmark = previous[3]
            torch.set_num_threads(previous[4])


def _batched_loss(model: GRUClassifier, X: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(X), max(batch, 256)):
            stop = start + max(batch, 256)
            total += float(loss_fn(model.logits(X[start:stop]), y[start:stop]))
    return total / len(X)


def train_gru(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: GRUConfig = GRUConfig(),
    scaler: FeatureScaler | None = None,
    pair_id: str | None = None,
) -> TrainResult:
    """Train a :class:`GRUClassifier` with Adam and early stopping on validation loss.

    Minibatches are shuffled *within* the training slice by a generator seeded with
    ``config.seed``; the validation slice is only evaluated. Binary cross-entropy on logits;
    gradients clipped to ``config.grad_clip``; at most ``max_epochs``, stopping after ``patience``
    epochs without a lower validation loss.

    Parameters
    ----------
    X_train, X_val : ndarray
        Raw sequences ``[n, seq_len, n_features]``.
    y_train, y_val : ndarray
        0/1 labels.
    config : GRUConfig, optional
        Hyperparameters; ``config.seed`` seeds initialisation, dropout and batch order.
    scaler : FeatureScaler, optional
        The train-only scaler folded into the model; fitted here on the training rows when omitted
        (the first sequence plus the last step of each following one — the distinct rows when
        sequences step by one session).
    pair_id : str, optional
        Named in error messages.

    Returns
    -------
    TrainResult
        With the best-validation-loss weights restored.

    Raises
    ------
    TrainingDivergedError
        The training or validation loss is NaN or infinite.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    n_features = X_train.shape[2]
    if scaler is None:
        rows = np.concatenate([X_train[0], X_train[1:, -1, :]], axis=0)
        scaler = FeatureScaler.fit(rows, FEATURE_NAMES if n_features == len(FEATURE_NAMES) else None)
    who = pair_prefix(pair_id)
    with _deterministic(config.seed, device, config.cpu_threads):
        model = GRUClassifier(n_features, config.hidden, config.dropout, scaler.mean, scaler.std).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        xt = torch.as_tensor(X_train, dtype=torch.float32, device=device)
        yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
        xv = torch.as_tensor(X_val, dtype=torch.float32, device=device)
        yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
        order = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, float]] = []
        best_loss, best_epoch, best_state, waited, stopped_early = math.inf, 0, None, 0, False
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            permutation = torch.randperm(len(xt), generator=order).to(device)
            total = 0.0
            for start in range(0, len(xt), config.batch_size):
                idx = permutation[start : start + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model.logits(xt[idx]), yt[idx])
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"{who}training loss became {loss.item()} at epoch {epoch}, batch "
                        f"{start // config.batch_size + 1} (lr={config.lr}); check the inputs "
                        "for extreme values or lower the learning rate"
                    )
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += loss.item() * len(idx)
            model.eval()
            train_loss = total / len(xt)
            val_loss = _batched_loss(model, xv, yv, config.batch_size)
            if not math.isfinite(val_loss):
                raise TrainingDivergedError(f"{who}validation loss became {val_loss} at epoch {epoch}")
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if val_loss < best_loss:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= config.patience:
                    stopped_early = True
                    break
        assert best_state is not None
        model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        device=str(device),
        seconds=time.perf_counter() - started,
    )


def predict_proba(model: nn.Module, X: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Probabilities of the label event for raw sequences (eval mode, no gradients).

    Parameters
    ----------
    model : torch.nn.Module
    X : ndarray
        float32 ``[n, seq_len, n_features]``.
    batch : int, default 1024
        Sequences per forward pass.

    Returns
    -------
    ndarray
        ``[n]``.
    """
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch):
            xb = torch.as_tensor(X[start : start + batch], dtype=torch.float32, device=device)
            out.append(model(xb).double().cpu().numpy())
    return np.concatenate(out) if out else np.empty(0)


# --- many pairs at once ----------------------------------------------------------------------------

_GRU_KEYS = ("gru.weight_ih_l0", "gru.weight_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0")


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """A model's weights by state-dict key (directly for a GRUClassifier: a state_dict() call costs
    more than the stacked forward pass of a whole sector)."""
    if isinstance(module, GRUClassifier):
        gru = module.gru
        return {
            "gru.weight_ih_l0": gru.weight_ih_l0, "gru.weight_hh_l0": gru.weight_hh_l0, "gru.bias_ih_l0": gru.bias_ih_l0,
            "gru.bias_hh_l0": gru.bias_hh_l0, "head.weight": module.head.weight, "head.bias": module.head.bias,
            "feature_mean": module.feature_mean, "feature_std": module.feature_std,
        }
    return dict(module.state_dict())


class StackedGRU(nn.Module):
    """``P`` independent :class:`GRUClassifier` s as one module: the pair is the leading batch dimension.

    Each model keeps its own weights (``w_ih [P, 3H, F]``, ``w_hh [P, 3H, H]``, biases, head) and
    its own train-only scaler; nothing is shared. ``logits(x)`` / ``forward(x)`` take ``x`` float32
    ``[P, B, seq_len, n_features]`` of raw features — model p sees ``x[p]`` only — and return
    ``[P, B]``. The recurrence is PyTorch's GRU (gate order r, z, n; ``h' = (h − n)·z + n``, Cho et
    al. 2014) written with batched matrix products, so one call runs every model: equal to each
    model's own ``nn.GRU`` forward up to float32 rounding (checked in the tests).

    See Also
    --------
    StackedGRU.from_modules : stack trained models.
    StackedGRU.unstack : one model back as a :class:`GRUClassifier`.
    """

    def __init__(self, n_models: int, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        p, f, h = n_models, n_features, hidden
        self.hidden = h
        self.w_ih = nn.Parameter(torch.zeros(p, 3 * h, f))
        self.w_hh = nn.Parameter(torch.zeros(p, 3 * h, h))
        self.b_ih = nn.Parameter(torch.zeros(p, 3 * h))
        self.b_hh = nn.Parameter(torch.zeros(p, 3 * h))
        self.head_w = nn.Parameter(torch.zeros(p, h, 1))
        self.head_b = nn.Parameter(torch.zeros(p, 1, 1))
        self.register_buffer("feature_mean", torch.zeros(p, f))
        self.register_buffer("feature_std", torch.ones(p, f))

    @classmethod
    def from_modules(cls, modules: list[nn.Module]) -> StackedGRU:
        """Stack trained models: :class:`GRUClassifier` s, or modules with their state-dict keys (the
        ``torch.export`` modules MLflow loads back). Raises ``ValueError`` when one lacks a weight or
        the shapes differ."""
        states = [_weights(m) for m in modules]
        if not states:
            raise ValueError("from_modules needs at least one model")
        needed = (*_GRU_KEYS, "head.weight", "head.bias", "feature_mean", "feature_std")
        for i, state in enumerate(states):
            missing = [k for k in needed if k not in state]
            if missing:
                raise ValueError(f"model {i} has no {', '.join(missing)}: not a GRUClassifier")
        hidden = states[0]["gru.weight_hh_l0"].shape[1]
        n_features = states[0]["gru.weight_ih_l0"].shape[1]
        stacked = cls(len(states), n_features, hidden)
        try:
            with torch.no_grad():
                for name, key in zip(("w_ih", "w_hh", "b_ih", "b_hh"), _GRU_KEYS):
                    getattr(stacked, name).copy_(torch.stack([s[key].float().cpu() for s in states]))
                stacked.head_w.copy_(torch.stack([s["head.weight"].float().cpu().reshape(hidden, 1) for s in states]))
                stacked.head_b.copy_(torch.stack([s["head.bias"].float().cpu().reshape(1, 1) for s in states]))
                stacked.feature_mean.copy_(torch.stack([s["feature_mean"].float().cpu() for s in states]))
                stacked.feature_std.copy_(torch.stack([s["feature_std"].float().cpu() for s in states]))
        except RuntimeError as exc:  # a shape that differs between the models
            raise ValueError(f"models of different shapes cannot be stacked: {exc}") from exc
        return stacked.eval()

    def unstack(self, index: int, dropout: float = 0.0) -> GRUClassifier:
        """Model ``index`` as a :class:`GRUClassifier` (CPU, eval mode)."""
        f = self.w_ih.shape[2]
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the RNG alone
            model = GRUClassifier(f, self.hidden, dropout, self.feature_mean[index].cpu().numpy(), self.feature_std[index].cpu().numpy())
        with torch.no_grad():
            for name, key in zip(("w_ih", "w_hh", "b_ih", "b_hh"), _GRU_KEYS):
                getattr(model.gru, key.split(".")[1]).copy_(getattr(self, name)[index].detach().cpu())
            model.head.weight.copy_(self.head_w[index].detach().cpu().reshape(1, -1))
            model.head.bias.copy_(self.head_b[index].detach().cpu().reshape(1))
        return model.eval()

    def logits(
        self, x: torch.Tensor, dropout_mask: torch.Tensor | None = None, pairs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pre-sigmoid scores ``[P, B]``; ``dropout_mask`` ``[P, B, H]`` (already scaled by 1/(1−p))
        multiplies the last hidden state, as ``nn.Dropout`` does in training. ``pairs``: run only
        these models (indices), ``x`` then holds their sequences only."""
        p, b, t, f = x.shape
        h_dim = self.hidden
        w_ih, w_hh, b_ih, b_hh, head_w, head_b, mean, std = (
            self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.head_w, self.head_b, self.feature_mean, self.feature_std
        )
        if pairs is not None:
            w_ih, w_hh, b_ih, b_hh, head_w, head_b, mean, std = (
                v.index_select(0, pairs) for v in (w_ih, w_hh, b_ih, b_hh, head_w, head_b, mean, std)
            )
        scaled = (x - mean[:, None, None, :]) / std[:, None, None, :]
        gi = torch.baddbmm(b_ih[:, None, :], scaled.reshape(p, b * t, f), w_ih.transpose(1, 2))
        gi = gi.reshape(p, b, t, 3 * h_dim)
        w_hh = w_hh.transpose(1, 2)
        h = x.new_zeros(p, b, h_dim)
        for step in range(t):
            gh = torch.baddbmm(b_hh[:, None, :], h, w_hh)
            i_r, i_z, i_n = gi[:, :, step].chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (h - n) * z + n
        if dropout_mask is not None:
            h = h * dropout_mask
        # an elementwise product and a row sum, not a matrix product: each model's scores must not
        # depend on how many models are stacked with it (a batched matrix-vector product of one model
        # takes another kernel than that of several)
        return (h * head_w[:, None, :, 0]).sum(dim=-1) + head_b[:, :, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def predict_proba_many(models: StackedGRU | list[nn.Module], sequences: np.ndarray) -> np.ndarray:
    """Probabilities of many models in one forward pass: model p on ``sequences[p]``.

    Parameters
    ----------
    models : StackedGRU or list of torch.nn.Module
        The models (a list is stacked).
    sequences : ndarray
        Raw float32 ``[P, B, seq_len, n_features]``, or ``[P, seq_len, n_features]``: one sequence
        per model (e.g. the signal job's latest window of each pair).

    Returns
    -------
    ndarray
        float64 ``[P, B]`` (or ``[P]``).
    """
    x = np.asarray(sequences, dtype=np.float32)
    single = x.ndim == 3
    if single:
        x = x[:, None]
    threads = torch.get_num_threads()
    try:
        # one thread: these matrices are tiny, and extra threads only wait on each other (measured)
        torch.set_num_threads(1)
        stacked = models if isinstance(models, StackedGRU) else StackedGRU.from_modules(list(models))
        if x.ndim != 4 or x.shape[0] != stacked.w_ih.shape[0]:
            raise ValueError(f"sequences must be [P, B, seq_len, n_features] with P={stacked.w_ih.shape[0]}, got {x.shape}")
        stacked.eval()
        with torch.no_grad():
            device = stacked.w_ih.device
            out = stacked(torch.as_tensor(x, device=device)).double().cpu().numpy()
    finally:
        torch.set_num_threads(threads)
    return out[:, 0] if single else out


def _stack_padded(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """``[P, max_n, ...]`` float32, each array's rows first, zeros after."""
    longest = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), longest, *arrays[0].shape[1:]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.as_tensor(out, device=device)


def train_gru_many(
    datasets: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    config: GRUConfig = GRUConfig(),
    scalers: list[FeatureScaler] | None = None,
    pair_ids: list[str | None] | None = None,
) -> list[TrainResult | TrainingDivergedError]:
    """:func:`train_gru` for many pairs at once: one :class:`StackedGRU`, the pair as batch dimension.

    Each pair is trained as :func:`train_gru` trains it alone, step for step: the same initial
    weights (seeded with ``config.seed``), the same minibatch order (its own generator seeded with
    ``config.seed``), the same dropout draws (on CPU: each pair's own copy of the seeded global
    RNG), Adam with per-pair step counts (torch's update formula), gradient clipping of each pair's
    own norm, early stopping on each pair's own validation loss (a stopped pair is frozen). Only
    the float32 rounding of the batched matrix products differs, so weights and metrics agree with
    one-at-a-time training within a tolerance (the tests check it), not bit for bit. Deterministic:
    the same inputs on the same machine give the same weights. On CUDA the dropout masks come from
    the CPU generator (then copied), so CPU and CUDA runs differ in rounding only.

    Parameters
    ----------
    datasets : list of tuple
        Per pair ``(X_train, y_train, X_val, y_val)`` as for :func:`train_gru` (the pairs' sequence
        counts may differ; ``seq_len`` and ``n_features`` may not).
    config : GRUConfig, optional
        Shared hyperparameters (``config.device``: ``auto`` → CUDA when present).
    scalers : list of FeatureScaler, optional
        Per pair train-only scaler (default: fitted as :func:`train_gru` does).
    pair_ids : list of str, optional
        Named in error messages.

    Returns
    -------
    list
        Per pair, in input order, a :class:`TrainResult` (a :class:`GRUClassifier` on CPU with the
        best-validation-loss weights; ``seconds`` is the batch's wall time divided by the number of
        pairs) or the :class:`TrainingDivergedError` that stopped that pair (the others go on).
    """
    started = time.perf_counter()
    n_pairs = len(datasets)
    if n_pairs == 0:
        return []
    pair_ids = list(pair_ids) if pair_ids is not None else [None] * n_pairs
    device = resolve_device(config.device)
    n_features = datasets[0][0].shape[2]
    if scalers is None:
        scalers = []
        for X_train, *_ in datasets:
            rows = np.concatenate([X_train[0], X_train[1:, -1, :]], axis=0)
            scalers.append(FeatureScaler.fit(rows, FEATURE_NAMES if n_features == len(FEATURE_NAMES) else None))
    hidden, bs, drop = config.hidden, config.batch_size, config.dropout
    results: list[TrainResult | TrainingDivergedError | None] = [None] * n_pairs
    with _deterministic(config.seed, device, config.cpu_threads):
        singles, rng_states = [], []
        for scaler in scalers:  # each pair's initial weights and RNG exactly as train_gru draws them
            torch.manual_seed(config.seed)
            singles.append(GRUClassifier(n_features, hidden, drop, scaler.mean, scaler.std))
            rng_states.append(torch.get_rng_state())
        model = StackedGRU.from_modules(singles).to(device).train()
        params = [model.w_ih, model.w_hh, model.b_ih, model.b_hh, model.head_w, model.head_b]
        exp_avg = [torch.zeros_like(p) for p in params]
        exp_avg_sq = [torch.zeros_like(p) for p in params]
        steps = np.zeros(n_pairs)
        beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, config.lr  # torch.optim.Adam's defaults
        xt = _stack_padded([d[0] for d in datasets], device)
        yt = _stack_padded([d[1] for d in datasets], device)
        xv = _stack_padded([d[2] for d in datasets], device)
        yv = _stack_padded([d[3] for d in datasets], device)
        n_train = np.array([len(d[0]) for d in datasets])
        n_val = torch.as_tensor([len(d[2]) for d in datasets], dtype=torch.float64)
        val_weight = (torch.arange(xv.shape[1])[None, :] < n_val[:, None]).to(device, torch.float32)
        orders = [torch.Generator().manual_seed(config.seed) for _ in range(n_pairs)]
        histories: list[list[dict[str, float]]] = [[] for _ in range(n_pairs)]
        best = [p.detach().clone() for p in params]
        best_loss = np.full(n_pairs, math.inf)
        best_epoch = np.zeros(n_pairs, dtype=int)
        waited = np.zeros(n_pairs, dtype=int)
        live = np.ones(n_pairs, dtype=bool)  # still training (not stopped early, not diverged)
        stopped_early = np.zeros(n_pairs, dtype=bool)
        for epoch in range(1, config.max_epochs + 1):
            if not live.any():
                break
            model.train()
            perms = [torch.randperm(int(n), generator=g) if live[i] else None for i, (n, g) in enumerate(zip(n_train, orders))]
            n_steps = int(max(math.ceil(n_train[i] / bs) for i in range(n_pairs) if live[i]))
            totals = np.zeros(n_pairs)
            for step in range(n_steps):
                # only the pairs with a minibatch at this step run: a stopped pair costs nothing
                act_list = [i for i in range(n_pairs) if live[i] and step * bs < n_train[i]]
                n_act = len(act_list)
                index = torch.zeros(n_act, bs, dtype=torch.long)
                weight = torch.zeros(n_act, bs)
                mask = torch.zeros(n_act, bs, hidden) if drop > 0 else None
                sizes = np.zeros(n_act, dtype=int)
                for a, i in enumerate(act_list):
                    idx = perms[i][step * bs : (step + 1) * bs]
                    k = len(idx)
                    sizes[a] = k
                    index[a, :k] = idx
                    weight[a, :k] = 1.0 / k
                    if mask is not None:  # nn.Dropout's draw from the pair's own RNG stream
                        torch.set_rng_state(rng_states[i])
                        mask[a, :k] = torch.empty(k, hidden).bernoulli_(1 - drop).div_(1 - drop)
                        rng_states[i] = torch.get_rng_state()
                act = torch.as_tensor(act_list, dtype=torch.long, device=device)
                index, weight = index.to(device), weight.to(device)
                logits = model.logits(xt[act[:, None], index], None if mask is None else mask.to(device), pairs=act)
                per_item = nn.functional.binary_cross_entropy_with_logits(logits, yt[act[:, None], index], reduction="none")
                loss = (per_item * weight).sum(dim=1)  # each pair's mean over its own minibatch
                for p in params:
                    p.grad = None
                loss.sum().backward()
                values = loss.detach().double().cpu().numpy()
                finite = np.isfinite(values)
                for a in np.flatnonzero(~finite):
                    i = act_list[a]
                    results[i] = TrainingDivergedError(
                        f"{pair_prefix(pair_ids[i])}training loss became {values[a]} at epoch {epoch}, batch "
                        f"{step + 1} (lr={config.lr}); check the inputs for extreme values or lower the learning rate"
                    )
                    live[i] = False
                if not finite.any():
                    continue
                ok = [act_list[a] for a in np.flatnonzero(finite)]
                totals[ok] += values[finite] * sizes[finite]
                with torch.no_grad():
                    sel = torch.as_tensor(ok, dtype=torch.long, device=device)
                    grads = [p.grad.index_select(0, sel) for p in params]
                    norm = torch.sqrt(sum(g.reshape(len(ok), -1).double().pow(2).sum(dim=1) for g in grads)).float()
                    clip = torch.clamp(config.grad_clip / (norm + 1e-6), max=1.0)
                    steps[ok] += 1
                    bc1 = torch.as_tensor(1 - beta1 ** steps[ok], dtype=torch.float32, device=device)
                    bc2_sqrt = torch.as_tensor(np.sqrt(1 - beta2 ** steps[ok]), dtype=torch.float32, device=device)
                    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq):
                        shape = (len(ok),) + (1,) * (p.dim() - 1)
                        g = g * clip.reshape(shape)
                        m_ok = m.index_select(0, sel).lerp_(g, 1 - beta1)
                        v_ok = v.index_select(0, sel).mul_(beta2).addcmul_(g, g, value=1 - beta2)
                        m.index_copy_(0, sel, m_ok)
                        v.index_copy_(0, sel, v_ok)
                        denom = (v_ok.sqrt() / bc2_sqrt.reshape(shape)).add_(eps)
                        p.index_copy_(0, sel, p.index_select(0, sel) - (lr / bc1).reshape(shape) * (m_ok / denom))
            model.eval()
            val_loss = np.full(n_pairs, np.nan)
            running = np.flatnonzero(live)
            if len(running):
                with torch.no_grad():
                    run = torch.as_tensor(running, dtype=torch.long, device=device)
                    val_sum = torch.zeros(len(running), dtype=torch.float64, device=device)
                    chunk = max(bs, 256)
                    for start in range(0, xv.shape[1], chunk):
                        out = model.logits(xv[run, start : start + chunk], pairs=run)
                        item = nn.functional.binary_cross_entropy_with_logits(out, yv[run, start : start + chunk], reduction="none")
                        val_sum += (item * val_weight[run, start : start + chunk]).sum(dim=1).double()
                    val_loss[running] = (val_sum.cpu() / n_val[running]).numpy()
            improved = np.zeros(n_pairs, dtype=bool)
            for i in np.flatnonzero(live):
                if not math.isfinite(val_loss[i]):
                    results[i] = TrainingDivergedError(f"{pair_prefix(pair_ids[i])}validation loss became {val_loss[i]} at epoch {epoch}")
                    live[i] = False
                    continue
                histories[i].append({"epoch": epoch, "train_loss": totals[i] / n_train[i], "val_loss": float(val_loss[i])})
                if val_loss[i] < best_loss[i]:
                    best_loss[i], best_epoch[i], waited[i] = val_loss[i], epoch, 0
                    improved[i] = True
                else:
                    waited[i] += 1
                    if waited[i] >= config.patience:
                        stopped_early[i] = True
                        live[i] = False
            if improved.any():
                sel = torch.as_tensor(improved, device=device)
                with torch.no_grad():
                    for b, p in zip(best, params):
                        b.copy_(torch.where(sel.reshape((n_pairs,) + (1,) * (p.dim() - 1)), p, b))
        with torch.no_grad():
            for b, p in zip(best, params):
                p.copy_(b)
    model = model.to("cpu")
    seconds = (time.perf_counter() - started) / n_pairs
    for i in range(n_pairs):
        if results[i] is None:
            results[i] = TrainResult(
                model=model.unstack(i, drop),
                history=histories[i],
                best_epoch=int(best_epoch[i]),
                stopped_early=bool(stopped_early[i]),
                device=str(device),
                seconds=seconds,
            )
    return results  # type: ignore[return-value]


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
        spread, garch_sigma, garch_std_resid, entry_z, config, horizon, min_sequences, pair_id=pair_id,
        mean_window=mean_window, reversion_fraction=reversion_fraction, label=label,
        formation_window=formation_window, exit_z=exit_z, stop_z=stop_z, label_statistics=label_statistics,
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
    spread, garch_sigma, garch_std_resid, entry_z, config, horizon, min_sequences, *, pair_id, mean_window,
    reversion_fraction, label, formation_window, exit_z, stop_z, label_statistics,
) -> _PreparedPair:
    who = pair_prefix(pair_id)
    features = trim_warmup(build_features(spread, garch_sigma, garch_std_resid), pair_id)
    labels = make_labels(
        spread, label, horizon=horizon, formation_window=formation_window, exit_z=exit_z, stop_z=stop_z,
        mean_window=mean_window, reversion_fraction=reversion_fraction, statistics=label_statistics,
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
        spread=spread, entry_z=entry_z, config=config, horizon=horizon, pair_id=pair_id, mean_window=mean_window,
        reversion_fraction=reversion_fraction, label=label, formation_window=formation_window, exit_z=exit_z,
        stop_z=stop_z, features=features, n_sequences=len(X), split=split, data=data, scaler=scaler,
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
                    kwargs.pop("spread"), kwargs.pop("garch_sigma"), kwargs.pop("garch_std_resid"), kwargs.pop("entry_z"),
                    config, kwargs.pop("horizon", DEFAULT_HORIZON), min_sequences,
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
