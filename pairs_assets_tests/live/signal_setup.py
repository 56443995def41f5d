"""Shared setup of the signal tests: real embedded closes, a trading config built from them, a stand-in
``trading_config`` asset (same key and partitions) that really materializes it, and a tiny model registry."""


import math
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch

from pairs_assets import partitions
from pairs_assets.quant.features import FEATURE_NAMES
from pairs_assets.quant.gru import GRUClassifier
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore

AS_OF = "2022-12-28"
EFFECTIVE = "2022-12-29"
SECTOR = "consumer"
PARTITION = f"{AS_OF}|{SECTOR}"
PAIRS = [("KO", "PEP"), ("PG", "WMT")]
MODEL_NAME = "pairs_trading_gru_garch_consumer"

#: documents the stand-in trading_config asset writes, by partition key
DOCUMENTS: dict[str, dict] = {}


def load_history(store: MarketDataStore, symbols: list[str], sessions: int = 160) -> pd.DataFrame:
    """The embedded closes of ``symbols`` for the last ``sessions`` sessions up to AS_OF, into the store."""
    days = partitions.sessions_in_range("2022-01-01", AS_OF)[-sessions:]
    bars = EmbeddedBarSource().load_bars(symbols, partitions.session_open_utc(days[0]) - pd.Timedelta(hours=12),
                                         partitions.session_close_utc(days[-1]))
    store.upsert_bars(bars, context="test history")
    return bars


def pair_entry(bars: pd.DataFrame, y: str, x: str, *, model: dict | None, window: int = 60) -> dict:
    closes = bars.pivot(index="timestamp", columns="symbol", values="close").iloc[-window:]
    ly, lx = np.log(closes[y].to_numpy()), np.log(closes[x].to_numpy())
    hedge, intercept = np.polyfit(lx, ly, 1)
    spread = ly - hedge * lx - intercept
    changes = np.diff(spread)
    sigma = float(np.std(changes, ddof=1))
    return {
        "pair_id": f"{y}-{x}", "y": y, "x": x, "hedge_ratio": float(hedge), "intercept": float(intercept),
        "spread_mean": float(spread.mean()), "spread_std": float(spread.std(ddof=1)), "half_life": 8.0,
        "correlation": float(np.corrcoef(np.diff(ly), np.diff(lx))[0, 1]),
        "garch": {"mu": 0.0, "omega": sigma**2 * 0.05, "alpha": 0.05, "beta": 0.9, "sigma_forecast": sigma,
                  "unconditional_sigma": sigma},
        "levels": {"entry_z": 2.0, "exit_z": 0.5, "stop_z": 3.5},
        "sizing": {"gross_fraction": 0.1, "target_daily_vol": 0.01, "max_position": 0.1},
        "scores": {"composite": 0.75},
        "model": model,
    }


def build_document(bars: pd.DataFrame, *, model: dict | None = None, pairs=PAIRS, as_of: str = AS_OF,
                   effective: str = EFFECTIVE) -> dict:
    model = model if model is not None else {"name": MODEL_NAME, "version": "1", "probability_threshold": 0.0, "beats_baselines": True}
    return {
        "schema_version": 1, "as_of_session": as_of, "effective_session": effective, "sector": SECTOR,
        "source": "embedded:skfolio-sp500", "input_fingerprint": "test",
        "risk": {"max_portfolio_risk": 0.05, "max_position": 0.10, "target_daily_vol": 0.01},
        "pairs": [pair_entry(bars, y, x, model=dict(model) if model else None) for y, x in pairs],
    }


def price_for_z(entry: dict, x_price: float, z: float) -> float:
    """The y price that puts the pair's spread at ``z`` (σ_forecast = σ_∞ in these configs)."""
    s = entry["spread_mean"] + z * entry["spread_std"]
    return math.exp(s + entry["hedge_ratio"] * math.log(x_price) + entry["intercept"])


def live_bar(symbol: str, ts: str, close: float, source: str = "recycler:iex") -> dict:
    return {"symbol": symbol, "timestamp": pd.Timestamp(ts), "open": close, "high": close, "low": close,
            "close": close, "volume": 100.0, "trade_count": 1.0, "vwap": close, "source": source}


@dg.asset(name="trading_config", partitions_def=partitions.daily_partitions_def(), group_name="test_stand_in")
def stand_in_trading_config(context: dg.AssetExecutionContext, store: MarketDataStore) -> dg.MaterializeResult:
    """Writes DOCUMENTS[partition] to the store, like the real trading_config does."""
    document = DOCUMENTS[context.partition_key if isinstance(context.partition_key, str) else str(context.partition_key)]
    store.write_trading_config(document, path="test")
    return dg.MaterializeResult(metadata={"pairs": len(document["pairs"])})


class TinyModels(dg.ConfigurableResource):
    """A model registry holding seeded, untrained GRUClassifiers (the real one is MLflow-backed)."""

    seed: int = 0
    missing: list[str] = []

    def load_model(self, model_name: str, version: str) -> Any:
        if model_name in self.missing:
            raise LookupError(f"registered model {model_name} version {version} not found")
        torch.manual_seed(self.seed)
        return GRUClassifier(n_features=len(FEATURE_NAMES), hidden=8).eval()
