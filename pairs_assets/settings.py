"""Typed settings: where state lives (environment) and the strategy's windows and thresholds.

Two kinds of setting, each in one place:

* ``Paths`` — read once from the environment (``PAIRS_HOME``, ``PAIRS_DATABASE_URL``,
  ``PAIRS_BARS_FILE``, ``PAIRS_UNIVERSE_FILE``, ``PAIRS_HISTORY_START``, ``MLFLOW_TRACKING_URI``;
  for production ``PAIRS_IO_BASE``, ``PAIRS_EXECUTOR``, ``PAIRS_CELERY_BROKER``,
  ``PAIRS_CELERY_BACKEND``, ``PAIRS_MLFLOW_ARTIFACTS``).
* ``StrategySettings`` — a Dagster resource whose defaults were chosen on the development years
  1995–2010 (preset ``default``; the seed design's corr ≥ 0.8 / composite > 0.7 / daily
  re-selection is preset ``seed``). Engle-Granger p < 0.05, GRU 10/64/0.255/3e-4/32/50. Assets *and* asset
  checks read thresholds from it, so a gate always checks the threshold the asset used. Override
  any field per run in the launchpad (``resources: strategy: config: …``).

No threshold literal lives anywhere else.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field, model_validator

from pairs_assets.data import (  # noqa: F401  (the embedded dataset's names, re-exported)
    EMBEDDED_BARS_FILE,
    EMBEDDED_HISTORY_START,
    EMBEDDED_LAST_SESSION,
    EMBEDDED_UNIVERSE_FILE,
)

PACKAGE_DIR = Path(__file__).resolve().parent


def _default_home() -> Path:
    """``<project>/.pairs_home`` for a source checkout, else ``./.pairs_home``."""
    project_root = PACKAGE_DIR.parent
    if (project_root / "pyproject.toml").exists():
        return project_root / ".pairs_home"
    return Path.cwd() / ".pairs_home"


@dataclass(frozen=True)
class Paths:
    """Every local path and URL the platform uses, all derived from ``PAIRS_HOME`` by default."""

    home: Path
    database_url: str
    bars_file: Path | None
    universe_file: Path
    history_start: str
    mlflow_tracking_uri: str
    bar_source_kind: str = "embedded"
    alpaca_feed: str = "iex"
    alpaca_data_url: str | None = None
    broker_mode: str = "dry-run"
    # --- production (README "Production") ---------------------------------------------------
    io_base: str = ""
    executor: str = "in_process"
    celery_broker: str = ""
    celery_backend: str = "rpc://"
    mlflow_artifacts: str = ""
    #: environment variables that carried a URL (possibly with a password): resources get them
    #: as ``dg.EnvVar`` so the UI shows the variable's name, never its value.
    url_env_vars: frozenset[str] = frozenset()

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    @property
    def outputs_dir(self) -> Path:
        """Root of per-partition stage outputs: ``<outputs_dir>/<asset>/<date>/<sector>.parquet``.

        ``PAIRS_IO_BASE`` when it is a local (or shared, e.g. NFS) path, else ``PAIRS_HOME``.
        """
        if self.io_base and not is_url(self.io_base):
            return Path(self.io_base)
        return self.home

    @property
    def io_manager_base(self) -> str:
        """Where the IO manager keeps stage outputs: ``PAIRS_IO_BASE`` (a path or an fsspec URL
        such as ``s3://bucket/pairs``) or the local outputs folder."""
        return self.io_base or str(self.outputs_dir)

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = Path(env.get("PAIRS_HOME") or _default_home()).expanduser().resolve()
        bars = env.get("PAIRS_BARS_FILE")
        mlflow_dir = home / "mlflow"
        return cls(
            home=home,
            database_url=env.get("PAIRS_DATABASE_URL") or f"sqlite:///{home / 'market_data.sqlite'}",
            bars_file=Path(bars).expanduser().resolve() if bars else None,
            universe_file=Path(env.get("PAIRS_UNIVERSE_FILE") or EMBEDDED_UNIVERSE_FILE)
            .expanduser()
            .resolve(),
            history_start=env.get("PAIRS_HISTORY_START") or EMBEDDED_HISTORY_START,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            bar_source_kind=env.get("PAIRS_BAR_SOURCE") or ("file" if bars else "embedded"),
            alpaca_feed=env.get("PAIRS_ALPACA_FEED") or "iex",
            alpaca_data_url=env.get("PAIRS_ALPACA_DATA_URL") or None,
            broker_mode=env.get("PAIRS_BROKER") or "dry-run",
            io_base=_io_base(env.get("PAIRS_IO_BASE") or ""),
            executor=(env.get("PAIRS_EXECUTOR") or "in_process").replace("-", "_"),
            celery_broker=env.get("PAIRS_CELERY_BROKER") or "",
            celery_backend=env.get("PAIRS_CELERY_BACKEND") or "rpc://",
            mlflow_artifacts=_io_base(env.get("PAIRS_MLFLOW_ARTIFACTS") or ""),
            url_env_vars=frozenset(
                name for name in ("PAIRS_DATABASE_URL", "MLFLOW_TRACKING_URI") if env.get(name)
            ),
        )


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://…``) rather than a filesystem path."""
    return "://" in location and not location.startswith("file://")


def _io_base(location: str) -> str:
    """A path made absolute (``~`` expanded, ``file://`` stripped), or a URL unchanged."""
    if not location:
        return ""
    if location.startswith("file://"):
        location = location[len("file://") :]
    if is_url(location):
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


@functools.cache
def paths() -> Paths:
    """The process's paths, read from the environment once."""
    return Paths.from_env()


class StrategySettings(dg.ConfigurableResource):
    """Windows (in sessions) and thresholds of the daily graph and the signal job.

    Every window counts NYSE sessions ending at (and including) the partition's as-of session.
    """

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
    jump_window: int = Field(60, ge=10, description="Earlier bars' log returns in the robust (median/MAD) scale of a jump.")
    jump_min_history: int = Field(20, ge=5, description="Earlier returns a bar needs before its return is scored.")
    jump_z_max: float = Field(10.0, gt=0.0, description="A return beyond this many robust σ is a jump ...")
    jump_min_abs_log_return: float = Field(
        0.15, ge=0.0, description="... when it is also at least this large (|log return|; a floor for flat series)."
    )
    price_max: float = Field(1e7, gt=0.0, description="A close above this is implausible (BRK.A trades near 7e5).")
    price_min: float = Field(
        1e-4, gt=0.0, description="A close below this is implausible (1e-4 is the smallest sub-penny quote; 1e-300 is no price)."
    )
    jump_short_history_ratio_max: float = Field(
        2.0, gt=1.0,
        description="With fewer than jump_min_history earlier returns (the first sessions of a store) there is no robust "
        "scale: a close more than this many times the previous one, or less than its reciprocal, is a jump.",
    )
    # --- GARCH ------------------------------------------------------------------------------
    # --- trading period --------------------------------------------------------------------
    reselect_every: int = Field(
        21, ge=1,
        description="Sessions between pair selections (the trading period): every stage runs at the formation "
        "session (every reselect_every-th NYSE session counted from the fixed epoch 1990-01-02, shifted by "
        "formation_phase — not from the history start) and the pairs selected there are traded, with their "
        "formation numbers, until the next one. 1 = re-select daily.",
    )
    formation_phase: int = Field(
        0, ge=0,
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
    backtest_lag: int = Field(1, ge=0, le=1, description="Execution lag of the recent backtest (the walk-forward's is 1).")
    backtest_cost_bp: float = Field(5.0, ge=0.0, description="Cost of the recent backtest, basis points per leg.")
    garch_window: int = Field(750, ge=500, description="Spread returns used to fit GARCH(1,1) (≥ 500).")
    garch_holdout: int = Field(
        250, ge=20, description="Last returns of the GARCH window held out for 1-step forecast accuracy."
    )
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
        0.0, ge=0.0, le=1.0,
        description="Composite score a pair must exceed (0: no composite gate; on 1995–2010 the composite "
        "ranked forward P&L the wrong way, README \"Does the score rank pairs?\"; the seed gates at 0.7).",
    )
    diagnostics_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Level of Ljung-Box / ARCH-LM.")
    # --- trading levels ---------------------------------------------------------------------
    entry_z: float = Field(2.0, gt=0.0)
    exit_z: float = Field(0.5, ge=0.0)
    stop_z: float = Field(3.5, gt=0.0)
    max_portfolio_risk: float = Field(0.05, gt=0.0, le=1.0, description="Total risk budget, fraction of equity.")
    max_position: float = Field(0.10, gt=0.0, le=1.0, description="Largest gross position per pair leg.")
    target_daily_vol: float = Field(
        0.001, gt=0.0,
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
    gru_val_frac: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the GRU's sequences in its validation slice.")
    gru_test_frac: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the GRU's sequences in its test slice.")
    gru_min_sequences: int = Field(
        250, ge=50, description="Fewest labelled sequences a GRU is trained on (fewer: the pair is skipped, saying so)."
    )
    gru_gate: bool = Field(
        False,
        description="Whether the signal job vetoes entries with the pair's GRU (written to the trading config as "
        "gru_gate). Off by default: on 1995–2010 the gate added nothing in the walk-forward (README); the seed "
        "gates. gru_models trains and registers the models either way.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StrategySettings:
        if len(self.score_weights) != 4 or abs(sum(self.score_weights) - 1.0) > 1e-9:
            raise ValueError(f"score_weights must be four weights summing to 1, got {self.score_weights}")
        if not self.exit_z < self.entry_z < self.stop_z:
            raise ValueError(
                f"need exit_z < entry_z < stop_z, got {self.exit_z}, {self.entry_z}, {self.stop_z}"
            )
        if self.gru_val_frac + self.gru_test_frac >= 1.0:
            raise ValueError(f"gru_val_frac + gru_test_frac must be below 1, got {self.gru_val_frac} + {self.gru_test_frac}")
        if self.formation_phase >= self.reselect_every:
            raise ValueError(
                f"formation_phase must be below reselect_every, got {self.formation_phase} with reselect_every {self.reselect_every}"
            )
        if self.garch_holdout * 2 > self.garch_window:
            raise ValueError("garch_holdout must be at most half of garch_window")
        return self

    @classmethod
    def preset(cls, name: str, **overrides) -> StrategySettings:
        """A named preset (:data:`PRESETS`) with ``overrides`` on top; unknown names are refused."""
        if name not in PRESETS:
            raise ValueError(f"unknown strategy preset {name!r} (known: {', '.join(sorted(PRESETS))})")
        return cls(**{**PRESETS[name], **overrides})

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
    def history_sessions(self) -> int:
        """Sessions of bars a partition reads, as-of session included (the longest window + 1 return)."""
        return self.reach(max(self.formation_window, self.garch_sessions, self.backtest_sessions, self.gru_window))


#: Named strategy settings. ``default``: the defaults of :class:`StrategySettings`, the best of the
#: configurations tried on the development years 1995–2010 (README "Does it make money?"): a
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

DEFAULT_STRATEGY = StrategySettings()
