"""The trading config: one typed model for the writer, the signal reader, the walk-forward and the tests.

A trading config is what the trading side reads for the session after the as-of session: the
selected pairs of one sector with their legs, hedge ratio, spread statistics, GARCH parameters,
levels, sizing, scores and (optionally) the GRU that gates entries. It is written as canonical
JSON (sorted keys, no wall-clock field) so the same inputs give a byte-identical file.

``schema_version`` is checked on read: a document of an unknown version is refused with
:class:`TradingConfigError` instead of being half-understood. Floats that are not finite are
stored as ``null`` (JSON has no NaN).

Numbers are checked for sense on read and on write (issue 21 item 9): a JSON ``true`` or a quoted
number is not a number (pydantic would read them as 1.0 and 0.8); no number's magnitude exceeds
:data:`NUMBER_MAX_ABS`; a pair's spread definition is plausible — ``0 < |hedge_ratio| <=``
:data:`HEDGE_RATIO_MAX_ABS`, ``|intercept|`` and ``|spread_mean| <=`` :data:`SPREAD_LEVEL_MAX_ABS`,
``spread_std`` between :func:`spread_std_floor` and :data:`SPREAD_STD_MAX` — and ``y != x``.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from pairs_assets.errors import PairsError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "HEDGE_RATIO_MAX_ABS",
    "NUMBER_MAX_ABS",
    "SPREAD_LEVEL_MAX_ABS",
    "SPREAD_STD_MAX",
    "SPREAD_STD_MIN",
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
    "spread_std_floor",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

#: No number in a trading config is larger than this in magnitude (GARCH ω, fractions, scores, z
#: levels and half-lives are all far below; 1e300 is a corrupt document, not a parameter).
NUMBER_MAX_ABS = 1e9
#: |β| of a spread of log prices: beyond 100 a 1% move of x is a 100% move of y — not a pair.
HEDGE_RATIO_MAX_ABS = 100.0
#: |intercept| and |spread_mean| in log-price units: ln(1e7) ≈ 16, so |ln y − β ln x| < 1,700.
SPREAD_LEVEL_MAX_ABS = 1e4
#: The absolute floor of spread_std (log units): 1e-6 is 0.0001 % of the price ratio, a hundredth
#: of a one-cent tick on a $100 stock; no two traded prices give a spread that still.
SPREAD_STD_MIN = 1e-6
#: ... and relative to the spread's scale (max |intercept|, |spread_mean|): below 1e-9 of it the
#: σ is rounding of the spread's own computation, not dispersion.
SPREAD_STD_MIN_RELATIVE = 1e-9
#: A log spread whose σ is 10 moves the price ratio by e^10 ≈ 22,000× per σ.
SPREAD_STD_MAX = 10.0


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


def spread_std_floor(intercept: float, spread_mean: float) -> float:
    """The least plausible ``spread_std``: :data:`SPREAD_STD_MIN`, or :data:`SPREAD_STD_MIN_RELATIVE`
    of the spread's scale ``max(|intercept|, |spread_mean|)`` when that is larger."""
    return max(SPREAD_STD_MIN, SPREAD_STD_MIN_RELATIVE * max(abs(intercept), abs(spread_mean)))


def _annotation_types(annotation: Any) -> set[type]:
    """``float | None`` → {float, NoneType}; a plain class → {it}."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {t for arg in typing.get_args(annotation) for t in _annotation_types(arg)}
    origin = typing.get_origin(annotation)
    return {origin if origin is not None else annotation}


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
    #: fields whose own validator bounds them more tightly than NUMBER_MAX_ABS (and says how)
    _own_bounds: typing.ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1.0 and "0.8" as 0.8 in a number field: refuse both
        kinds = _annotation_types(cls.model_fields[info.field_name].annotation)
        if not kinds & {float, int}:
            return value
        if isinstance(value, (bool, np.bool_)) and bool not in kinds:
            raise ValueError(f"a boolean ({json.dumps(bool(value))}) is not a number")
        if isinstance(value, str) and str not in kinds:
            raise ValueError(f"a string ({value!r}) is not a number")
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            number = float(value)
            if math.isfinite(number) and abs(number) > NUMBER_MAX_ABS and info.field_name not in cls._own_bounds:
                raise ValueError(
                    f"{number:g} is beyond the plausible magnitude {NUMBER_MAX_ABS:g} of a trading config's numbers"
                )
        return value


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
    _own_bounds: typing.ClassVar[frozenset[str]] = frozenset({"hedge_ratio", "intercept", "spread_mean", "spread_std"})

    @field_validator("x")
    @classmethod
    def _two_symbols(cls, value: str, info: ValidationInfo) -> str:
        y = info.data.get("y")
        if isinstance(y, str) and value.strip().upper() == y.strip().upper():
            shown = value if value == y else repr(value)
            raise ValueError(f"x is {shown}, the same symbol as y: a pair needs two symbols")
        return value

    @field_validator("hedge_ratio")
    @classmethod
    def _plausible_hedge_ratio(cls, value: float) -> float:
        if not 0 < abs(value) <= HEDGE_RATIO_MAX_ABS:
            raise ValueError(
                f"hedge_ratio={value:g} is not plausible (a spread of log prices needs "
                f"0 < |hedge_ratio| <= {HEDGE_RATIO_MAX_ABS:g})"
            )
        return value

    @field_validator("intercept", "spread_mean")
    @classmethod
    def _plausible_level(cls, value: float, info: ValidationInfo) -> float:
        if abs(value) > SPREAD_LEVEL_MAX_ABS:
            raise ValueError(
                f"{info.field_name}={value:g} is not plausible (log-price units: |{info.field_name}| <= "
                f"{SPREAD_LEVEL_MAX_ABS:g})"
            )
        return value

    @field_validator("spread_std")
    @classmethod
    def _plausible_spread_std(cls, value: float, info: ValidationInfo) -> float:
        intercept, mean = info.data.get("intercept"), info.data.get("spread_mean")
        floor = spread_std_floor(intercept or 0.0, mean or 0.0) if None not in (intercept, mean) else SPREAD_STD_MIN
        if not floor <= value <= SPREAD_STD_MAX:
            raise ValueError(
                f"spread_std={value:g} is not plausible (at least {floor:g} — {SPREAD_STD_MIN:g}, or "
                f"{SPREAD_STD_MIN_RELATIVE:g} of max |intercept|, |spread_mean| — and at most {SPREAD_STD_MAX:g}; "
                "a z-score divides by it)"
            )
        return value


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
            reason = first["msg"].removeprefix("Value error, ")  # our own checks' sentences read alone
            raise TradingConfigError(
                f"{where}: field {_field_path(data, first['loc'])}: {reason} ({exc.error_count()} error(s))"
            ) from None

    @classmethod
    def parse_stored(cls, text: str | bytes, *, partition: str, path: str) -> TradingConfig:
        """:meth:`parse` of a stored document (the store's row or the file): a truncated, empty or
        non-object document, like any bad field, raises :class:`TradingConfigError` in ONE line that
        names the partition and the file."""
        try:
            return cls.parse(text, where=f"trading config {partition}")
        except TradingConfigError as exc:
            message = " ".join(str(exc).split())
            raise TradingConfigError(f"{message} (file {path})") from None

    def document(self) -> dict:
        """The plain JSON-ready dict (what the store's ``trading_configs`` row and the file hold)."""
        document = self.model_dump(mode="json")
        if document["formation_session"] is None:
            del document["formation_session"]  # re-selected daily: the document reads as it always has
        return document

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, 2-space indent, no NaN, trailing newline."""
        return (json.dumps(self.document(), sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
