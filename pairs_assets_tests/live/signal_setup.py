"""Shared setup of the signal tests: real embedded closes, a trading config built from them through the
typed model, a stand-in ``trading_config`` asset (same key and partitions) that really materializes it,
and a tiny model registry."""

import math
from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch

from pairs_assets import partitions
from pairs_assets.quant.cointegration import engle_granger, half_life, hedge_ratio, spread
from pairs_assets.quant.config_model import PairConfig, TradingConfig
from pairs_assets.quant.features import FEATURE_NAMES
from pairs_assets.quant.gru import GRUClassifier
from pairs_assets_tests import trading_configs as configs
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore

AS_OF = "2022-12-28"
EFFECTIVE = "2022-12-29"
SECTOR = "consumer"
PARTITION = f"{AS_OF}|{SECTOR}"
PAIRS = [("KO", "PEP"), ("PG", "WMT")]
MODEL_NAME = "pairs_trading_gru_garch_consumer"

#: configs the stand-in trading_config asset writes, by partition key
CONFIGS: dict[str, TradingConfig] = {}


def load_history(store: MarketDataStore, symbols: list[str], sessions: int = 160) -> pd.DataFrame:
    """The embedded closes of ``symbols`` for the last ``sessions`` sessions up to AS_OF, into the store."""
    days = partitions.sessions_in_range("2022-01-01", AS_OF)[-sessions:]
    bars = EmbeddedBarSource().load_bars(
        symbols, partitions.session_open_utc(days[0]) - pd.Timedelta(hours=12), partitions.session_close_utc(days[-1])
    )
    store.upsert_bars(bars, context="test history")
    return bars


def pair_entry(
    bars: pd.DataFrame,
    y: str,
    x: str,
    *,
    gated: bool = True,
    probability_threshold: float = 0.0,
    n_pairs: int = len(PAIRS),
    window: int = 60,
) -> PairConfig:
    """The pair's config from its last ``window`` closes: OLS hedge ratio and spread statistics, the
    Engle-Granger p-value and half-life, a GARCH block whose σ forecast equals its σ_∞ (the sample σ
    of the spread's changes), sizing as the writer computes it, and (``gated``) the sector's GRU."""
    closes = bars.pivot(index="timestamp", columns="symbol", values="close").iloc[-window:]
    ly, lx = np.log(closes[y].to_numpy()), np.log(closes[x].to_numpy())
    beta, intercept = hedge_ratio(ly, lx)
    pair_spread = spread(closes[y].to_numpy(), closes[x].to_numpy(), beta, intercept)
    sigma = float(np.std(np.diff(pair_spread), ddof=1))
    garch = configs.garch_block(
        omega=sigma**2 * 0.05, alpha=0.05, beta=0.9, sigma_forecast=sigma, unconditional_sigma=sigma
    )
    model = (
        configs.model_block(MODEL_NAME, "1", garch=garch, probability_threshold=probability_threshold)
        if gated
        else None
    )
    return configs.pair_config(
        y,
        x,
        hedge_ratio=beta,
        intercept=intercept,
        spread_mean=float(pair_spread.mean()),
        spread_std=float(pair_spread.std(ddof=1)),
        garch=garch,
        model=model,
        correlation=float(np.corrcoef(np.diff(ly), np.diff(lx))[0, 1]),
        half_life=half_life(pair_spread),
        eg_pvalue=engle_granger(ly, lx).pvalue,
        n_pairs=n_pairs,
    )


def build_config(
    bars: pd.DataFrame,
    *,
    pairs=PAIRS,
    gated: bool = True,
    probability_threshold: float = 0.0,
    extra: Sequence[PairConfig] = (),
    as_of: str = AS_OF,
    effective: str = EFFECTIVE,
) -> TradingConfig:
    """The sector's trading config for ``pairs`` (each gated by the sector's GRU unless ``gated=False``)."""
    entries = [
        pair_entry(bars, y, x, gated=gated, probability_threshold=probability_threshold, n_pairs=len(pairs))
        for y, x in pairs
    ]
    return configs.trading_config([*entries, *extra], as_of=as_of, effective=effective, sector=SECTOR)


def price_for_z(entry: PairConfig, x_price: float, z: float) -> float:
    """The y price that puts the pair's spread at ``z`` (σ_forecast = σ_∞ in these configs)."""
    s = entry.spread_mean + z * entry.spread_std
    return math.exp(s + entry.hedge_ratio * math.log(x_price) + entry.intercept)


def live_bar(symbol: str, ts: str, close: float, source: str = "alpaca:iex-stream") -> dict:
    """A bar as `pairs stream --alpaca` stores it (the live source outside replay mode)."""
    return {
        "symbol": symbol,
        "timestamp": pd.Timestamp(ts),
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": 100.0,
        "trade_count": 1.0,
        "vwap": close,
        "source": source,
    }


@dg.asset(name="trading_config", partitions_def=EMBEDDED_DAILY, group_name="test_stand_in")
def stand_in_trading_config(context: dg.AssetExecutionContext, store: MarketDataStore) -> dg.MaterializeResult:
    """Writes CONFIGS[partition]'s document to the store, like the real trading_config does."""
    config = CONFIGS[context.partition_key if isinstance(context.partition_key, str) else str(context.partition_key)]
    store.write_trading_config(config.document(), path="test")
    return dg.MaterializeResult(metadata={"pairs": len(config.pairs)})


class TinyModels(dg.ConfigurableResource):
    """A model registry holding seeded, untrained GRUClassifiers (the real one is MLflow-backed)."""

    seed: int = 0
    missing: list[str] = []

    def load_model(self, model_name: str, version: str) -> Any:
        if model_name in self.missing:
            raise LookupError(f"registered model {model_name} version {version} not found")
        torch.manual_seed(self.seed)
        return GRUClassifier(n_features=len(FEATURE_NAMES), hidden=8).eval()


def held_state(config: TradingConfig, **changes) -> Any:
    """A short KO-PEP position entered 2022-12-20 (the config's first pair's terms), last bar 2022-12-28."""
    from pairs_assets.assets.trading_signals import session_ordinal
    from pairs_assets.quant import rule

    ko_pep = config.pairs[0]
    fields = dict(
        pair_id="KO-PEP",
        y="KO",
        x="PEP",
        side=-1,
        weight_y=-0.05,
        weight_x=0.04,
        shares_y=10.0,
        shares_x=12.0,
        entry_session="2022-12-20",
        entry_ordinal=session_ordinal("2022-12-20"),
        entry_bar=pd.Timestamp("2022-12-20T15:00Z"),
        entry_z=2.4,
        sessions_held=5,
        stopped=False,
        entry_terms=ko_pep,
        terms=ko_pep,
        last_bar=pd.Timestamp("2022-12-28T20:00Z"),
    )
    fields.update(changes)
    return rule.PairState(**fields)
