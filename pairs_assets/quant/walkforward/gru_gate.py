"""The GRU gate in the walk-forward: the gru_models stage per as-of session, and the signal job's veto.

For every as-of session D with selected pairs, :meth:`GRUGate.models_for` trains each pair's GRU
exactly as the ``gru_models`` asset does (:func:`pairs_assets.quant.stages.gru_stage_fit_many`: the
session's pairs in one batch, same window, same seed), without registering it, and returns the rows ``build_trading_config`` needs.
:meth:`GRUGate.entry_gate` then decides an entry at the close of session t (config as-of D = the
session before t) as the signal job does (:func:`pairs_assets.assets.trading_signals.gru_probabilities`):
a model that does not beat its baselines does not gate (the entry stands); otherwise the entry
needs the GRU's probability — on the daily features of the session-close spread up to the as-of
session D (the signal job appends no intraday row: the model was trained on closes), filtered with
the model's own feature-GARCH parameters over ``history_sessions`` sessions — to reach the model's
threshold. A pair whose model could not be trained trades ungated, as live.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pairs_assets.quant.config_model import PairConfig
from pairs_assets.quant.features import GRUTrainingError, build_features
from pairs_assets.quant.garch import filter_fixed
from pairs_assets.quant.signals import DEFAULT_HISTORY_SESSIONS
from pairs_assets.quant.stages import feature_columns, feature_hedge, gru_config, gru_stage_fit_many, pair_spread
from pairs_assets.quant.strategy import Strategy

__all__ = ["GRUGate", "SIGNAL_HISTORY_SESSIONS"]

#: Sessions of spread history the signal job reads for the GRU's features (SignalRunConfig's default).
SIGNAL_HISTORY_SESSIONS = DEFAULT_HISTORY_SESSIONS


class GRUGate:
    """Trains and applies the per-pair GRUs of one sector's replay (see the module docstring).

    Its ``models_for`` is :func:`~pairs_assets.quant.walkforward.replay.build_configs`'s GRU stage
    and its ``entry_gate`` the veto :func:`~pairs_assets.quant.walkforward.replay.trade_configs`
    applies, as the daily signals gate entries.

    Parameters
    ----------
    closes : pandas.DataFrame
        The sector's session closes over the replay and the history before it.
    strategy : Strategy
    sector : str
    history_sessions : int, default SIGNAL_HISTORY_SESSIONS
        Sessions of spread history the gate reads for a probability, as the signal job does.

    Attributes
    ----------
    trained, skipped, vetoed, allowed : int
        Counts for the walk-forward's report.
    """

    def __init__(
        self, closes: pd.DataFrame, strategy: Strategy, sector: str, history_sessions: int = SIGNAL_HISTORY_SESSIONS
    ):
        self.closes = closes
        self.strategy = strategy
        self.sector = sector
        self.config = gru_config(strategy)
        self.history_sessions = history_sessions
        self.models: dict[tuple[pd.Timestamp, str], object] = {}
        self.trained = 0
        self.skipped = 0
        self.vetoed = 0
        self.allowed = 0

    def models_for(self, as_of: pd.Timestamp, selected: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame:
        rows = []
        pairs = list(selected.itertuples())
        # the session's selected pairs trained together, as gru_models trains a partition's
        for pair, (result, feature_garch, _levels, _garch) in zip(
            pairs, gru_stage_fit_many(window, pairs, self.strategy, self.config)
        ):
            if isinstance(result, GRUTrainingError):
                self.skipped += 1
                rows.append({"pair_id": pair.pair_id, "status": "skipped", "reason": str(result)})
                continue
            self.trained += 1
            self.models[(pd.Timestamp(as_of), pair.pair_id)] = result.model.eval()
            rows.append(
                {
                    "pair_id": pair.pair_id,
                    "status": "trained",
                    "reason": "",
                    "model_name": f"pairs_trading_gru_garch_{self.sector}",
                    "model_version": "walk-forward (not registered)",
                    "mlflow_run_id": None,
                    "probability_threshold": result.threshold,
                    "beats_baselines": bool(result.beats_baselines),
                    "test_f1": result.metrics["test"]["f1"],
                    "best_baseline_f1": max(b["f1"] for b in result.baseline_metrics.values()),
                    **feature_columns(feature_garch),
                }
            )
        return pd.DataFrame(rows)

    def probability(self, pair: PairConfig, as_of: pd.Timestamp, session: pd.Timestamp) -> float | None:
        """The probability of the model trained as of ``as_of``, for an entry in ``session``.

        As the signal job (:func:`pairs_assets.quant.signals.gru_sequence`): features of the session
        closes up to ``as_of`` only — the session's own close is the intraday price the live job
        does not feed the GRU.
        """
        from pairs_assets.quant.gru import predict_proba_many

        model = self.models.get((pd.Timestamp(as_of), pair.pair_id))
        if model is None or pair.model is None:
            return None
        end = self.closes.index.get_loc(as_of)
        history = self.closes.iloc[max(0, end - self.history_sessions + 1) : end + 1]  # the job's sessions
        hedge, intercept = feature_hedge(pair)
        levels = pair_spread(history, pair.y, pair.x, hedge, intercept).reset_index(drop=True)
        g = pair.model.feature_garch
        sigma, resid = filter_fixed(
            levels.diff().to_numpy(),
            mu=g.mu or 0.0,
            omega=g.omega,
            alpha=g.alpha,
            beta=g.beta,
            fallback_sigma=math.nan,  # as the signal job filters the feature GARCH
        )
        features = build_features(levels, pd.Series(sigma, index=levels.index), pd.Series(resid, index=levels.index))
        tail = features.tail(self.config.seq_len).to_numpy(dtype="float64")
        if len(tail) < self.config.seq_len or not np.isfinite(tail).all():
            return None
        # the signal job's forward pass (its models stacked, quant.gru.predict_proba_many): a model's
        # probability does not depend on the other models in the stack, so this is the job's number
        return float(predict_proba_many([model], tail[None].astype(np.float32))[0])

    def entry_gate(self, pair: PairConfig, as_of: pd.Timestamp, session: pd.Timestamp) -> bool:
        if pair.model is None or not pair.model.beats_baselines:
            return True  # no model, or one below its baselines: the signal job does not gate
        probability = self.probability(pair, as_of, session)
        if probability is None:
            return True
        threshold = pair.model.probability_threshold if pair.model.probability_threshold is not None else 0.5
        allowed = probability >= threshold
        self.allowed += allowed
        self.vetoed += not allowed
        return allowed
