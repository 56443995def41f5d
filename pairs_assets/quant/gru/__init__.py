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

Modules, each importing only the ones above it:

- :mod:`.model`: :class:`GRUConfig`, :func:`resolve_device`, :class:`GRUClassifier`,
  :class:`StackedGRU`, :func:`predict_proba`, :func:`predict_proba_many`.
- :mod:`.training`: :class:`TrainResult`, :func:`train_gru`, :func:`train_gru_many`.
- :mod:`.pairs`: :class:`PairModelResult`, :func:`fit_pair_model`, :func:`fit_pair_models`, the
  sequence-count floors.

Every public name is importable from here (``from pairs_assets.quant.gru import ...``), and
``pairs_assets.quant.gru.GRUClassifier`` still names the model class of models logged before the
split.

References: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder" (2014) for the
GRU; Prechelt, "Early Stopping — But When?" (1998); López de Prado, *Advances in Financial Machine
Learning* (2018), ch. 7, for purging overlapping labels at split boundaries.

Pure numpy/pandas/torch; no dagster, no resources.
"""

from __future__ import annotations

from pairs_assets.quant.features import (
    GRUTrainingError,
    InsufficientSequencesError,
    NaNFeaturesError,
    SingleClassError,
    TrainingDivergedError,
)
from pairs_assets.quant.gru.model import (
    GRUClassifier,
    GRUConfig,
    StackedGRU,
    predict_proba,
    predict_proba_many,
    resolve_device,
)
from pairs_assets.quant.gru.pairs import (
    DEFAULT_MIN_SEQUENCES,
    DEFAULT_TARGET_SEQUENCES,
    PairModelResult,
    fit_pair_model,
    fit_pair_models,
)
from pairs_assets.quant.gru.training import TrainResult, train_gru, train_gru_many

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
