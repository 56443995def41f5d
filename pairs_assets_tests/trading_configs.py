"""Trading configs for tests, built through the typed model (pairs_assets.quant.config_model).

No test hand-writes a config dict: the pairs, blocks and documents come from here (or from the
real writer, :func:`pairs_assets.quant.stages.build_trading_config`), so their field names are the
model's. Sizing is :func:`pairs_assets.quant.sizing.pair_sizing` on the pair's σ forecast and the
risk limits, as the writer computes it; thresholds, windows, risk and levels default to
:class:`pairs_assets.settings.StrategySettings`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pairs_assets.quant.config_model import (
    SCHEMA_VERSION,
    FeatureGarch,
    GarchBlock,
    Levels,
    ModelBlock,
    PairConfig,
    RiskBlock,
    Scores,
    Sizing,
    Thresholds,
    TradingConfig,
    Windows,
)
from pairs_assets.quant.garch import unconditional_sigma as implied_unconditional_sigma
from pairs_assets.quant.sizing import pair_sizing
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.strategies import SEED


def garch_block(
    *,
    omega: float,
    alpha: float,
    beta: float,
    sigma_forecast: float,
    mu: float = 0.0,
    unconditional_sigma: float | None = None,
) -> GarchBlock:
    """A GARCH block; σ_∞ defaults to √(ω / (1 − α − β)) (None when not stationary), as the writer stores it."""
    if unconditional_sigma is None:
        unconditional_sigma = implied_unconditional_sigma(omega, alpha, beta)
    return GarchBlock(
        mu=mu,
        omega=omega,
        alpha=alpha,
        beta=beta,
        persistence=alpha + beta,
        sigma_forecast=sigma_forecast,
        unconditional_sigma=unconditional_sigma,
    )


def model_block(
    name: str,
    version: str = "1",
    *,
    garch: GarchBlock,
    probability_threshold: float | None = 0.5,
    beats_baselines: bool = True,
    mlflow_run_id: str | None = None,
    test_f1: float | None = 0.6,
    best_baseline_f1: float | None = 0.5,
) -> ModelBlock:
    """A registered GRU's block; its feature GARCH is ``garch``'s parameters (the σ / residual features)."""
    return ModelBlock(
        name=name,
        version=version,
        mlflow_run_id=mlflow_run_id,
        probability_threshold=probability_threshold,
        beats_baselines=beats_baselines,
        test_f1=test_f1,
        best_baseline_f1=best_baseline_f1,
        feature_garch=FeatureGarch(mu=garch.mu, omega=garch.omega, alpha=garch.alpha, beta=garch.beta),
    )


def risk_block(strategy: StrategySettings = SEED) -> RiskBlock:
    return RiskBlock(
        max_portfolio_risk=strategy.max_portfolio_risk,
        max_position=strategy.max_position,
        target_daily_vol=strategy.target_daily_vol,
    )


def pair_config(
    y: str,
    x: str,
    *,
    hedge_ratio: float,
    intercept: float,
    spread_mean: float,
    spread_std: float,
    garch: GarchBlock,
    model: ModelBlock | None = None,
    pair_id: str | None = None,
    correlation: float | None = 0.85,
    half_life: float | None = 8.0,
    eg_pvalue: float | None = 0.01,
    levels: Levels | None = None,
    n_pairs: int = 1,
    rank: int = 1,
    strategy: StrategySettings = SEED,
) -> PairConfig:
    """One selected pair as the writer builds it: sizing from ``pair_sizing``, levels from the strategy."""
    sizing = pair_sizing(
        sigma_forecast=garch.sigma_forecast if garch.sigma_forecast is not None else float("nan"),
        hedge_ratio=hedge_ratio,
        target_daily_vol=strategy.target_daily_vol,
        max_position=strategy.max_position,
        max_portfolio_risk=strategy.max_portfolio_risk,
        n_pairs=n_pairs,
    )
    return PairConfig(
        pair_id=pair_id or f"{y}-{x}",
        y=y,
        x=x,
        hedge_ratio=hedge_ratio,
        intercept=intercept,
        spread_mean=spread_mean,
        spread_std=spread_std,
        half_life=half_life,
        correlation=correlation,
        eg_pvalue=eg_pvalue,
        garch=garch,
        levels=levels or Levels(entry_z=strategy.entry_z, exit_z=strategy.exit_z, stop_z=strategy.stop_z),
        sizing=Sizing(**sizing),
        scores=Scores(
            aic_score=0.8, forecast_score=0.7, backtest_score=0.75, diagnostic_score=1.0, composite=0.75, rank=rank
        ),
        model=model,
        model_note="trained" if model is not None else "no model: not trained",
    )


def trading_config(
    pairs: Sequence[PairConfig],
    *,
    as_of: str,
    effective: str,
    sector: str,
    symbols: Sequence[str] | None = None,
    source: str = "embedded:skfolio-sp500",
    fingerprint: str = "test",
    strategy: StrategySettings = SEED,
) -> TradingConfig:
    """A sector's trading config holding ``pairs`` (symbols default to their legs)."""
    legs = sorted({s for p in pairs for s in (p.y, p.x)})
    return TradingConfig(
        schema_version=SCHEMA_VERSION,
        as_of_session=as_of,
        effective_session=effective,
        sector=sector,
        source=source,
        symbols=list(symbols) if symbols is not None else legs,
        input_fingerprint=fingerprint,
        thresholds=Thresholds(
            correlation_min=strategy.correlation_min, eg_pvalue_max=strategy.eg_pvalue_max, score_min=strategy.score_min
        ),
        windows=Windows(
            formation=strategy.formation_window,
            garch=strategy.garch_window,
            backtest=strategy.backtest_window,
            gru=strategy.gru_window,
        ),
        risk=risk_block(strategy),
        pairs=list(pairs),
    )
