"""The trading config: one typed model for the writer, the signal reader, the walk-forward and the tests.

A trading config is what the trading side reads for the session after the as-of session: the
selected pairs of one sector with their legs, hedge ratio, spread statistics, GARCH parameters,
levels, sizing, scores and (optionally) the GRU that gates entries. It is written as canonical
JSON (sorted keys, no wall-clock field) so the same inputs give a byte-identical file.

``schema_version`` is checked on read: a document of an unknown version is refused with
:class:`TradingConfigError` instead of being half-understood. Floats that are not finite are
stored as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pairs_assets.errors import PairsError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "FeatureGarch",
    "GarchBlock",
    "Levels",
    "ModelBlock",
    "PairConfig",
    "RiskBlock",
    "Scores",
    "Sizing",
    "Thresholds",
    "TradingConfig",
    "TradingConfigError",
    "Windows",
    "clean_float",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)


class TradingConfigError(PairsError, ValueError):
    """A trading config document cannot be read: unknown schema version, missing or bad field."""


def clean_float(value: Any) -> float | None:
    """A JSON-safe float.

    Parameters
    ----------
    value : object
        A number (numpy scalars included) or None.

    Returns
    -------
    float or None
        None for NaN, ±inf or None.
    """
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _field_path(data: dict, loc: tuple) -> str:
    """``pairs.0.garch.omega`` → ``pairs[0] (KO-PG).garch.omega``: the pair named, not only its index."""
    parts = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "pairs" and isinstance(loc[1], int):
        pairs = data.get("pairs")
        entry = pairs[loc[1]] if isinstance(pairs, list) and loc[1] < len(pairs) else None
        pair_id = entry.get("pair_id") if isinstance(entry, dict) else None
        head = f"pairs[{loc[1]}]" + (f" ({pair_id})" if pair_id else "")
        parts = [head, *parts[2:]]
    return ".".join(parts)


class _Block(BaseModel):
    # Unknown keys are refused: a typo in a writer or a hand-edited file must not pass silently.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Floats(_Block):
    @field_validator("*", mode="before")
    @classmethod
    def _plain_scalars(cls, value: Any) -> Any:
        # numpy scalars → Python; non-finite floats → None (JSON has no NaN)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return clean_float(value)
        return value


class GarchBlock(_Floats):
    """GARCH(1,1) of the spread's daily changes (input units).

    Attributes
    ----------
    mu, omega, alpha, beta : float or None
        The fitted parameters (None: no usable fit).
    persistence : float or None
        alpha + beta.
    sigma_forecast : float or None
        The one-session σ forecast at the as-of session.
    unconditional_sigma : float or None
        σ_∞ = √(ω / (1 − α − β)) when stationary.
    """

    mu: float | None
    omega: float | None
    alpha: float | None
    beta: float | None
    persistence: float | None
    sigma_forecast: float | None
    unconditional_sigma: float | None


class Levels(_Floats):
    """The pair's z-score levels, ``0 <= exit_z < entry_z < stop_z``.

    Attributes
    ----------
    entry_z, exit_z, stop_z : float
    """
    entry_z: float
    exit_z: float
    stop_z: float


class Sizing(_Floats):
    """Leg fractions of equity from :func:`pairs_assets.quant.sizing.pair_sizing`.

    Attributes
    ----------
    y_fraction, x_fraction, gross_fraction : float or None
    pair_vol_target, expected_daily_vol : float or None
    """

    y_fraction: float | None
    x_fraction: float | None
    gross_fraction: float | None
    pair_vol_target: float | None
    expected_daily_vol: float | None


class Scores(_Floats):
    """The pair's selection scores (:mod:`pairs_assets.quant.scoring`).

    Attributes
    ----------
    aic_score, forecast_score, backtest_score, diagnostic_score : float or None
        The components.
    composite : float or None
        Their weighted combination.
    rank : int
        1 = the sector's best pair.
    """
    aic_score: float | None
    forecast_score: float | None
    backtest_score: float | None
    diagnostic_score: float | None
    composite: float | None
    rank: int


class FeatureGarch(_Floats):
    """The GARCH parameters behind the GRU's σ / residual features (fitted before its test slice).

    Attributes
    ----------
    mu, omega, alpha, beta : float or None
    """

    mu: float | None
    omega: float | None
    alpha: float | None
    beta: float | None


class ModelBlock(_Floats):
    """The registered GRU that gates this pair's entries.

    Attributes
    ----------
    name, version : str
        The registered model and version.
    mlflow_run_id : str or None
    probability_threshold : float or None
        The probability an entry needs.
    beats_baselines : bool
    test_f1, best_baseline_f1 : float or None
    feature_garch : FeatureGarch
    feature_hedge_ratio, feature_intercept : float or None
        The spread the GRU's features are built on, ``log y − feature_hedge_ratio·log x −
        feature_intercept`` (estimated before the GRU's validation and test slices; None: the pair's
        own hedge ratio).
    """

    name: str
    version: str
    mlflow_run_id: str | None
    probability_threshold: float | None
    beats_baselines: bool
    test_f1: float | None
    best_baseline_f1: float | None
    feature_garch: FeatureGarch
    #: the spread the GRU's features are built on: log y − feature_hedge_ratio·log x − feature_intercept
    #: (estimated before the GRU's validation and test slices; None: the pair's own hedge ratio)
    feature_hedge_ratio: float | None = None
    feature_intercept: float | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class PairConfig(_Floats):
    """One selected pair: y is the dependent leg, spread = ln(P_y) − hedge_ratio·ln(P_x) − intercept.

    Attributes
    ----------
    pair_id, y, x : str
    hedge_ratio, intercept : float
    spread_mean, spread_std : float
        The formation window's spread statistics (the z-score's mean and dispersion).
    half_life, correlation, eg_pvalue : float or None
    garch : GarchBlock
    levels : Levels
    sizing : Sizing
    scores : Scores
    model : ModelBlock or None
        None: no model gates the pair (``model_note`` says why).
    model_note : str
    """

    pair_id: str
    y: str
    x: str
    hedge_ratio: float
    intercept: float
    spread_mean: float
    spread_std: float
    half_life: float | None
    correlation: float | None
    eg_pvalue: float | None
    garch: GarchBlock
    levels: Levels
    sizing: Sizing
    scores: Scores
    model: ModelBlock | None
    model_note: str


class Thresholds(_Floats):
    """The selection thresholds the config was built with.

    Attributes
    ----------
    correlation_min, eg_pvalue_max, score_min : float
    """
    correlation_min: float
    eg_pvalue_max: float
    score_min: float


class Windows(_Block):
    """Sessions of the windows the config was built with.

    Attributes
    ----------
    formation, garch, backtest, gru : int
    """
    formation: int
    garch: int
    backtest: int
    gru: int


class RiskBlock(_Floats):
    """The risk limits the config was sized with (fractions of equity).

    Attributes
    ----------
    max_portfolio_risk, max_position, target_daily_vol : float
    """
    max_portfolio_risk: float
    max_position: float
    target_daily_vol: float


class TradingConfig(_Block):
    """A sector's trading config for ``effective_session`` (the session after ``as_of_session``).

    Read with :meth:`parse` (a :class:`TradingConfigError` names the field at fault), written with
    :meth:`to_json_bytes` (canonical JSON: byte-identical for the same inputs).

    Attributes
    ----------
    schema_version : int
        One of :data:`SUPPORTED_SCHEMA_VERSIONS`.
    as_of_session, effective_session : str
        ``YYYY-MM-DD``.
    sector, source : str
    symbols : list of str
        The sector's symbols.
    input_fingerprint : str
        The fingerprint of the bars the config was built from.
    formation_session : str or None
        The formation session of the trading period (None: the as-of session).
    gru_gate : bool
        Whether the signals gate entries with the pairs' GRUs.
    thresholds : Thresholds
    windows : Windows
    risk : RiskBlock
    pairs : list of PairConfig
    """

    schema_version: int
    as_of_session: str
    effective_session: str
    sector: str
    source: str
    symbols: list[str]
    input_fingerprint: str
    formation_session: str | None = None  # when earlier than the as-of session: the trading period's formation
    #: whether the signal job vetoes entries with each pair's GRU (``StrategySettings.gru_gate``);
    #: a document written before the field existed was gated
    gru_gate: bool = True
    thresholds: Thresholds
    windows: Windows
    risk: RiskBlock
    pairs: list[PairConfig]

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"unknown trading config schema_version {value}; this version of pairs_assets reads "
                f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}"
            )
        return value

    @classmethod
    def parse(cls, document: dict | str | bytes, *, where: str = "trading config") -> TradingConfig:
        """Validate a document (dict or JSON text); :class:`TradingConfigError` names the field at fault."""
        try:
            data = json.loads(document) if isinstance(document, (str, bytes)) else document
        except json.JSONDecodeError as exc:
            raise TradingConfigError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise TradingConfigError(f"{where}: a trading config is a JSON object, got {type(data).__name__}")
        readable = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        if "schema_version" not in data:
            raise TradingConfigError(f"{where}: no schema_version field; this version of pairs_assets reads {readable}")
        version = data["schema_version"]
        if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
            raise TradingConfigError(
                f"{where}: unknown schema_version {version!r}; this version of pairs_assets reads {readable}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise TradingConfigError(
                f"{where}: field {_field_path(data, first['loc'])}: {first['msg']} ({exc.error_count()} error(s))"
            ) from None

    def document(self) -> dict:
        """The plain JSON-ready dict (what the store's ``trading_configs`` row and the file hold)."""
        document = self.model_dump(mode="json")
        if document["formation_session"] is None:
            del document["formation_session"]  # re-selected daily: the document reads as it always has
        return document

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, 2-space indent, no NaN, trailing newline."""
        return (json.dumps(self.document(), sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
