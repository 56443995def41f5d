"""The GRU gate's model: its configuration, one pair's :class:`GRUClassifier`, many pairs' models
stacked as one :class:`StackedGRU`, and their forward passes (:func:`predict_proba`,
:func:`predict_proba_many`).

The model takes *raw* features ``[batch, seq_len, n_features]`` float32 and returns probabilities:
the train-only scaler is stored in it as buffers, so a model loaded back from MLflow needs nothing
else.

References: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder" (2014) for the
GRU.

Pure numpy/torch; no dagster, no resources.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pairs_assets.quant.strategy import DEFAULT_STRATEGY

__all__ = [
    "GRUClassifier",
    "GRUConfig",
    "StackedGRU",
    "predict_proba",
    "predict_proba_many",
    "resolve_device",
]


@dataclass(frozen=True)
class GRUConfig:
    """Hyperparameters of the GRU and its training (defaults: the strategy's ``gru_*`` defaults,
    :data:`pairs_assets.quant.strategy.DEFAULT_STRATEGY`; every preset keeps them).

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

    seq_len: int = DEFAULT_STRATEGY.gru_seq_len
    hidden: int = DEFAULT_STRATEGY.gru_hidden
    dropout: float = DEFAULT_STRATEGY.gru_dropout
    lr: float = DEFAULT_STRATEGY.gru_lr
    batch_size: int = DEFAULT_STRATEGY.gru_batch_size
    max_epochs: int = DEFAULT_STRATEGY.gru_max_epochs
    patience: int = DEFAULT_STRATEGY.gru_patience
    seed: int = DEFAULT_STRATEGY.gru_seed
    device: str = "auto"
    val_frac: float = DEFAULT_STRATEGY.gru_val_frac
    test_frac: float = DEFAULT_STRATEGY.gru_test_frac
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
            "gru.weight_ih_l0": gru.weight_ih_l0,
            "gru.weight_hh_l0": gru.weight_hh_l0,
            "gru.bias_ih_l0": gru.bias_ih_l0,
            "gru.bias_hh_l0": gru.bias_hh_l0,
            "head.weight": module.head.weight,
            "head.bias": module.head.bias,
            "feature_mean": module.feature_mean,
            "feature_std": module.feature_std,
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
            model = GRUClassifier(
                f, self.hidden, dropout, self.feature_mean[index].cpu().numpy(), self.feature_std[index].cpu().numpy()
            )
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
            self.w_ih,
            self.w_hh,
            self.b_ih,
            self.b_hh,
            self.head_w,
            self.head_b,
            self.feature_mean,
            self.feature_std,
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
            raise ValueError(
                f"sequences must be [P, B, seq_len, n_features] with P={stacked.w_ih.shape[0]}, got {x.shape}"
            )
        stacked.eval()
        with torch.no_grad():
            device = stacked.w_ih.device
            out = stacked(torch.as_tensor(x, device=device)).double().cpu().numpy()
    finally:
        torch.set_num_threads(threads)
    return out[:, 0] if single else out
