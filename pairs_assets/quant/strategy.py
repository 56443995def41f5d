"""The strategy: its settings, their validators, the named presets and the windows each stage reads.

A pure model (pydantic, no Dagster): the quant layer, the walk-forward and the CLI take a
:class:`Strategy`; the Dagster resource :class:`pairs_assets.settings.StrategySettings` inherits
these fields (names, defaults, bounds and descriptions are the launchpad's config schema) and hands
the pure model to the numerics with :meth:`StrategySettings.strategy`. Every default is stated
here, once: the other modules read them from :data:`DEFAULT_STRATEGY`.

Every window counts NYSE sessions ending at (and including) the partition's as-of session (the
formation session for a stage window, see :meth:`Strategy.reach`).
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pairs_assets.errors import PairsError

__all__ = ["DEFAULT_STRATEGY", "PRESETS", "Levels", "Strategy", "StrategyError", "STAGE_WINDOWS"]


class StrategyError(PairsError, ValueError):
    """Strategy settings that fail validation or an unknown preset; one line naming the field."""


class Levels(Protocol):
    """The z levels of the entry rule (what :mod:`pairs_assets.quant.rule` reads): a
    :class:`Strategy`, a trading config or a gate's snapshot of one."""

    @property
    def entry_z(self) -> float: ...

    @property
    def exit_z(self) -> float: ...

    @property
    def stop_z(self) -> float: ...


class Strategy(BaseModel):
    """Windows (in sessions) and thresholds of the daily graph, the signal job and the walk-forward.

    The defaults were chosen on the development years 1995–2010 (preset ``default``; the seed
    design's corr ≥ 0.8 / composite > 0.7 / daily re-selection is preset ``seed``). Immutable:
    derive a variant with :meth:`preset` or ``model_copy(update=…)`` (validated by :meth:`with_`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- formation and pair selection -------------------------------------------------------
    formation_window: int = Field(252, ge=20, description="Sessions of closes for correlation and Engle-Granger.")
    correlation_min: float = Field(0.7, ge=-1.0, le=1.0, description="Minimum log-return correlation.")
    eg_pvalue_max: float = Field(0.05, gt=0.0, lt=1.0, description="Engle-Granger p-value must be below this.")
    eg_require_both_orderings: bool = Field(
        True, description="Require p < eg_pvalue_max with either leg as the dependent (conservative)."
    )
    fdr_alpha: float | None = Field(
        None, description="If set, Benjamini-Hochberg control of the false discovery rate across candidates."
    )
    max_flat_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="A series with more zero log-returns than this is stale and excluded."
    )
    # --- data plausibility (raw_bars checks; WARN) -------------------------------------------
    jump_window: int = Field(
        60, ge=10, description="Earlier bars' log returns in the robust (median/MAD) scale of a jump."
    )
    jump_min_history: int = Field(20, ge=5, description="Earlier returns a bar needs before its return is scored.")
    jump_z_max: float = Field(10.0, gt=0.0, description="A return beyond this many robust σ is a jump ...")
    jump_min_abs_log_return: float = Field(
        0.15, ge=0.0, description="... when it is also at least this large (|log return|; a floor for flat series)."
    )
    price_max: float = Field(1e7, gt=0.0, description="A close above this is implausible (BRK.A trades near 7e5).")
    price_min: float = Field(
        1e-4,
        gt=0.0,
        description="A close below this is implausible (1e-4 is the smallest sub-penny quote; 1e-300 is no price).",
    )
    jump_short_history_ratio_max: float = Field(
        2.0,
        gt=1.0,
        description="With fewer than jump_min_history earlier returns (the first sessions of a store) there is no robust "
        "scale: a close more than this many times the previous one, or less than its reciprocal, is a jump.",
    )
    # --- GARCH ------------------------------------------------------------------------------
    garch_window: int = Field(750, ge=500, description="Spread returns used to fit GARCH(1,1) (≥ 500).")
    garch_holdout: int = Field(
        250, ge=20, description="Last returns of the GARCH window held out for 1-step forecast accuracy."
    )
    # --- trading period --------------------------------------------------------------------
    reselect_every: int = Field(
        21,
        ge=1,
        description="Sessions between pair selections (the trading period): every stage runs at the formation "
        "session (every reselect_every-th NYSE session counted from the fixed epoch 1990-01-02, shifted by "
        "formation_phase — not from the history start) and the pairs selected there are traded, with their "
        "formation numbers, until the next one. 1 = re-select daily.",
    )
    formation_phase: int = Field(
        0,
        ge=0,
        description="Which of the reselect_every phases of the formation calendar (0 ≤ phase < reselect_every): the "
        "formation sessions are the epoch's blocks shifted by this many sessions. 0 by default (the epoch's own "
        "blocks); `pairs walk-forward --robustness` reports every phase.",
    )
    causal_hedge: bool = Field(
        True,
        description="GARCH on spread changes with a rolling hedge ratio estimated before each change "
        "(formation_window sessions ending the session before), so its hold-out never sees its own future β.",
    )
    backtest_before_formation: bool = Field(
        True,
        description="Run the recent backtest on the backtest_window sessions just BEFORE the formation window "
        "(estimated on the formation_window sessions before those), not on the window that selected the pair.",
    )
    backtest_lag: int = Field(
        1, ge=0, le=1, description="Execution lag of the recent backtest (the walk-forward's is 1)."
    )
    backtest_cost_bp: float = Field(5.0, ge=0.0, description="Cost of the recent backtest, basis points per leg.")
    # --- scoring ----------------------------------------------------------------------------
    backtest_window: int = Field(60, ge=10, description="Sessions of the recent out-of-sample backtest.")
    score_weights: list[float] = Field(
        [0.4, 0.3, 0.2, 0.1], description="Weights of AIC/BIC, forecast accuracy, backtest, diagnostics."
    )
    aic_scale: Literal["per_observation", "total"] = Field(
        "per_observation",
        description="Scale of the AIC/BIC component: per observation, d/(d + 0.077) with d = ΔIC per return "
        "(discriminates between real pairs), or the seed's σ(ΔIC/10) of the total (1.0 for every real pair).",
    )
    score_min: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Composite score a pair must exceed (0: no composite gate; on 1995–2010 the composite "
        'ranked forward P&L the wrong way, docs/research/walk-forward.md "Does the score rank pairs?"; the seed gates at 0.7).',
    )
    diagnostics_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Level of Ljung-Box / ARCH-LM.")
    # --- trading levels ---------------------------------------------------------------------
    entry_z: float = Field(2.0, gt=0.0)
    exit_z: float = Field(0.5, ge=0.0)
    stop_z: float = Field(3.5, gt=0.0)
    max_portfolio_risk: float = Field(0.05, gt=0.0, le=1.0, description="Total risk budget, fraction of equity.")
    max_position: float = Field(0.10, gt=0.0, le=1.0, description="Largest gross position per pair leg.")
    target_daily_vol: float = Field(
        0.001,
        gt=0.0,
        description="Daily P&L volatility per pair, fraction of equity (deliverable inside max_position for a "
        "spread σ ≥ 1%; the seed preset asks 1%, which the 10% position limit cannot deliver).",
    )
    # --- GRU --------------------------------------------------------------------------------
    gru_window: int = Field(1300, ge=200, description="Sessions of spread history for GRU training.")
    gru_seq_len: int = Field(10, ge=2)
    gru_hidden: int = Field(64, ge=1)
    gru_dropout: float = Field(0.255, ge=0.0, lt=1.0)
    gru_lr: float = Field(3e-4, gt=0.0)
    gru_batch_size: int = Field(32, ge=1)
    gru_max_epochs: int = Field(50, ge=1)
    gru_patience: int = Field(5, ge=1)
    gru_horizon: int = Field(5, ge=1, description="Sessions within which the spread must revert (label).")
    gru_seed: int = Field(42)
    gru_val_frac: float = Field(
        0.2, gt=0.0, lt=1.0, description="Share of the GRU's sequences in its validation slice."
    )
    gru_test_frac: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the GRU's sequences in its test slice.")
    gru_min_sequences: int = Field(
        250, ge=50, description="Fewest labelled sequences a GRU is trained on (fewer: the pair is skipped, saying so)."
    )
    gru_gate: bool = Field(
        False,
        description="Whether the signal job vetoes entries with the pair's GRU (written to the trading config as "
        "gru_gate). Off by default: on 1995–2010 the gate added nothing in the walk-forward (docs/research/walk-forward.md); the seed "
        "gates. gru_models trains and registers the models either way.",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.score_weights) != 4 or abs(sum(self.score_weights) - 1.0) > 1e-9:
            raise ValueError(f"score_weights must be four weights summing to 1, got {self.score_weights}")
        if not self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(f"need exit_z < entry_z < stop_z, got {self.exit_z}, {self.entry_z}, {self.stop_z}")
        if self.gru_val_frac + self.gru_test_frac >= 1.0:
            raise ValueError(
                f"gru_val_frac + gru_test_frac must be below 1, got {self.gru_val_frac} + {self.gru_test_frac}"
            )
        if self.formation_phase >= self.reselect_every:
            raise ValueError(
                f"formation_phase must be below reselect_every, got {self.formation_phase} with reselect_every {self.reselect_every}"
            )
        if self.garch_holdout * 2 > self.garch_window:
            raise ValueError(
                f"garch_holdout must be at most half of garch_window, got {self.garch_holdout} of {self.garch_window}"
            )
        return self

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **overrides):
        """A named preset (:data:`PRESETS`) with ``overrides`` on top; unknown names are refused."""
        if name not in PRESETS:
            raise StrategyError(f"unknown strategy preset {name!r} (known: {', '.join(sorted(PRESETS))})")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def parse(cls, params: dict):
        """``cls(**params)``, a failure raised as one :class:`StrategyError` line naming the field."""
        try:
            return cls(**params)
        except ValidationError as exc:
            raise StrategyError(validation_line(exc)) from None

    def strategy(self) -> Strategy:
        """The pure model of these settings (itself for a :class:`Strategy`; a plain copy for a subclass)."""
        if type(self) is Strategy:
            return self
        return Strategy(**{name: getattr(self, name) for name in Strategy.model_fields})

    # --- derived windows ------------------------------------------------------------------------

    @property
    def garch_sessions(self) -> int:
        """Sessions the GARCH stage reads, ending at the formation session (+ the rolling β's window)."""
        return self.garch_window + 1 + (self.formation_window if self.causal_hedge else 0)

    @property
    def backtest_sessions(self) -> int:
        """Sessions the recent backtest reads, ending at the formation session."""
        extra = self.formation_window if self.backtest_before_formation else 0
        return self.backtest_window + self.formation_window + extra

    def reach(self, window: int) -> int:
        """Sessions back from an as-of session that a ``window`` ending at its formation session spans.

        The formation session lies up to ``reselect_every − 1`` sessions before the as-of session,
        so a stage window of ``window`` sessions ending there reaches that many more back.
        """
        return window + self.reselect_every - 1

    @property
    def stage_windows(self) -> dict[str, int]:
        """Stage (asset name) → sessions of closes it reads, ending at its formation session
        (:data:`STAGE_WINDOWS` names the setting or window each one is)."""
        return {stage: getattr(self, attribute) for stage, attribute in STAGE_WINDOWS.items()}

    @property
    def history_sessions(self) -> int:
        """Sessions of bars a partition reads, as-of session included (the longest window + 1 return)."""
        return self.reach(max(self.stage_windows.values()))


#: The window each stage of the daily graph reads (a :class:`Strategy` field or derived window),
#: ending at the formation session; ``trading_config`` reads :attr:`Strategy.history_sessions`
#: ending at the as-of session.
STAGE_WINDOWS: dict[str, str] = {
    "correlation_matrix": "formation_window",
    "cointegrated_pairs": "formation_window",
    "garch_models": "garch_sessions",
    "model_selection": "backtest_sessions",
    "gru_models": "gru_window",
}


def validation_line(exc: ValidationError) -> str:
    """A pydantic error as one line: ``strategy setting FIELD: message`` (the first error)."""
    first = exc.errors()[0]
    field = ".".join(map(str, first["loc"])) or "?"
    message = first["msg"].removeprefix("Value error, ")
    if field == "?":
        return f"strategy settings: {message}"
    return f"strategy setting {field} = {first.get('input')!r}: {message}"


#: Named strategy settings. ``default``: the defaults of :class:`Strategy`, the best of the
#: configurations tried on the development years 1995–2010 (docs/research/walk-forward.md): a
#: 252-session formation re-selected every 21 sessions (the trading period), correlation ≥ 0.7,
#: every cointegrated pair traded (no composite gate), causal β in the GARCH, the recent backtest
#: before the formation window with lag 1 and 5 bp, a 0.1 %/day per-pair volatility target.
#: ``trading_period``: the same settings under the name the research runs used. ``seed``: the
#: project's first (seed) design (a 60-session formation re-selected daily, correlation ≥ 0.8, composite > 0.7,
#: the recent backtest on the selection window without lag or costs, a 1,000-return GARCH window,
#: a 1 % per-pair volatility target) — one switch away: ``--preset seed`` or the launchpad.
PRESETS: dict[str, dict] = {
    "seed": {
        "formation_window": 60,
        "correlation_min": 0.8,
        "reselect_every": 1,
        "score_min": 0.7,
        "aic_scale": "total",
        "causal_hedge": False,
        "backtest_before_formation": False,
        "backtest_lag": 0,
        "backtest_cost_bp": 0.0,
        "garch_window": 1000,
        "garch_holdout": 250,
        "target_daily_vol": 0.01,
        "gru_gate": True,
    },
    "default": {},
    "trading_period": {},
}


DEFAULT_STRATEGY = Strategy()
