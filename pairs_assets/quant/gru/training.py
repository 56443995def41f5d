"""Training the GRU gate: one pair (:func:`train_gru`) or many pairs at once as one
:class:`~pairs_assets.quant.gru.model.StackedGRU`, the pair as the batch dimension
(:func:`train_gru_many`).

Training is seeded and deterministic (same inputs and machine → same weights and metrics), with
early stopping on validation loss.

References: Prechelt, "Early Stopping — But When?" (1998).

Pure numpy/torch; no dagster, no resources.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pairs_assets.quant.features import (
    FEATURE_NAMES,
    FeatureScaler,
    TrainingDivergedError,
    pair_prefix,
)
from pairs_assets.quant.gru.model import GRUClassifier, GRUConfig, StackedGRU, resolve_device

__all__ = [
    "TrainResult",
    "train_gru",
    "train_gru_many",
]


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
            perms = [
                torch.randperm(int(n), generator=g) if live[i] else None
                for i, (n, g) in enumerate(zip(n_train, orders))
            ]
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
                per_item = nn.functional.binary_cross_entropy_with_logits(
                    logits, yt[act[:, None], index], reduction="none"
                )
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
                        item = nn.functional.binary_cross_entropy_with_logits(
                            out, yv[run, start : start + chunk], reduction="none"
                        )
                        val_sum += (item * val_weight[run, start : start + chunk]).sum(dim=1).double()
                    val_loss[running] = (val_sum.cpu() / n_val[running]).numpy()
            improved = np.zeros(n_pairs, dtype=bool)
            for i in np.flatnonzero(live):
                if not math.isfinite(val_loss[i]):
                    results[i] = TrainingDivergedError(
                        f"{pair_prefix(pair_ids[i])}validation loss became {val_loss[i]} at epoch {epoch}"
                    )
                    live[i] = False
                    continue
                histories[i].append(
                    {"epoch": epoch, "train_loss": totals[i] / n_train[i], "val_loss": float(val_loss[i])}
                )
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
