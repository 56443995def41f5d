"""Benchmark: seconds to materialize one date × sector partition of the whole daily graph.

Run: ``python pairs_assets_tests/benchmarks/bench_daily_graph.py``. Prints a table; asserts nothing.
Uses a temporary PAIRS_HOME, a SQLite store preloaded with the history window, an ephemeral
Dagster instance; the embedded data (2022-12-28, every sector) and one planted-pair partition.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

os.environ["PAIRS_HOME"] = tempfile.mkdtemp(prefix="pairs_bench_")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{os.environ['PAIRS_HOME']}/mlflow.db"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import dagster as dg  # noqa: E402

from pairs_assets.settings import DEFAULT_STRATEGY  # noqa: E402
from pairs_assets.universe import load_universe  # noqa: E402
from pairs_assets.settings import paths  # noqa: E402
from pairs_assets_tests.assets.graph_harness import materialize, preload_history, resources_for  # noqa: E402
from pairs_assets_tests.planted import planted_closes, write_bars_file  # noqa: E402
from resources.bar_sources import EmbeddedBarSource, FileBarSource  # noqa: E402


def step_seconds(result) -> dict[str, float]:
    out = {}
    for event in result.get_asset_materialization_events():
        value = event.materialization.metadata.get("elapsed_seconds")
        if value is not None:
            out[event.asset_key.to_user_string()] = float(value.value)
    return out


def main() -> None:
    url = f"sqlite:///{paths().home / 'bench.sqlite'}"
    universe = load_universe(paths().universe_file)
    embedded = EmbeddedBarSource()
    t0 = time.perf_counter()
    preload_history(url, embedded, universe.all_symbols, "2022-12-28", DEFAULT_STRATEGY.history_sessions + 20)
    print(f"preloaded {DEFAULT_STRATEGY.history_sessions + 20} sessions × {len(universe.all_symbols)} symbols in {time.perf_counter() - t0:.2f}s\n")
    planted = FileBarSource(path=write_bars_file(paths().home / "planted.csv", planted_closes()))
    planted_url = f"sqlite:///{paths().home / 'planted.sqlite'}"
    preload_history(planted_url, planted, ["AAPL", "AMD", "MSFT"], "2022-12-28", DEFAULT_STRATEGY.history_sessions)
    cases = [("embedded", "2022-12-28", s, url, embedded) for s in universe.sector_names] + [
        ("embedded", "2022-12-14", "consumer", url, embedded),  # KO-PG is selected: GRU + MLflow on real data
        ("planted", "2022-12-28", "technology", planted_url, planted),
    ]
    columns = ["raw_bars", "correlation_matrix", "cointegrated_pairs", "garch_models", "model_selection", "gru_models", "trading_config"]
    print(f"{'data':<9} {'partition':<24} {'pairs':>5} {'wall s':>7}  " + " ".join(f"{c[:10]:>10}" for c in columns))
    for label, date, sector, store_url, source in cases:
        instance = dg.DagsterInstance.ephemeral()
        t0 = time.perf_counter()
        result = materialize(date, sector, resources_for(store_url, source), instance=instance)
        wall = time.perf_counter() - t0
        steps = step_seconds(result)
        doc_path = paths().outputs_dir / "trading_config" / date / f"{sector}.json"
        import json

        pairs = len(json.loads(doc_path.read_text())["pairs"]) if result.success else -1
        cells = " ".join(f"{steps.get(c, float('nan')):>10.3f}" for c in columns)
        print(f"{label:<9} {date + '|' + sector:<24} {pairs:>5} {wall:>7.2f}  {cells}")
    print("\nwall s includes Dagster's own overhead (ephemeral instance); per-asset columns are the asset bodies.")


if __name__ == "__main__":
    main()
