"""Benchmark: seconds to materialize one date × sector partition of the whole daily graph.

Run: ``python pairs_assets_tests/benchmarks/bench_daily_graph.py``. Prints a table; asserts nothing.
Uses a temporary PAIRS_HOME, a SQLite store preloaded with the history window, an ephemeral
Dagster instance; the embedded data (2022-12-28, every sector) and one planted-pair partition.

``--overhead [repeats]``: where Dagster's own time goes in one partition. Materializes
2022-12-28|industrial (one symbol: no pair, so almost all of it is bookkeeping) ``repeats`` times
(default 5) on a persistent SQLite instance after a warm-up partition and prints the median wall
time, the asset bodies (their ``elapsed_seconds``) and the difference — the per-partition overhead —
with the project's event log (PairsSqliteEventLogStorage) and runs as quiet as ``pairs`` makes them,
with Dagster's default DEBUG console line per event, and with Dagster's own SQLite event log; then one run
under cProfile with the cumulative seconds of ``fetch_external_input_asset_version_info`` (data
provenance of the upstream partitions) and of the time-window partition mapping inside it; then
the lookback mappings alone (:func:`lookback_mapping` — what the stages declared on raw_bars before
issue 16 — for one key), the cost of walking
Dagster's exclusion-based session calendar one window at a time.
"""

from __future__ import annotations

import contextlib
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

from pairs_assets.settings import (
    DEFAULT_STRATEGY,  # noqa: E402
    paths,  # noqa: E402
)
from pairs_assets.universe import load_universe  # noqa: E402
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
    print(
        f"preloaded {DEFAULT_STRATEGY.history_sessions + 20} sessions × {len(universe.all_symbols)} symbols in {time.perf_counter() - t0:.2f}s\n"
    )
    planted = FileBarSource(path=write_bars_file(paths().home / "planted.csv", planted_closes()))
    planted_url = f"sqlite:///{paths().home / 'planted.sqlite'}"
    preload_history(planted_url, planted, ["AAPL", "AMD", "MSFT"], "2022-12-28", DEFAULT_STRATEGY.history_sessions)
    cases = [("embedded", "2022-12-28", s, url, embedded) for s in universe.sector_names] + [
        ("embedded", "2022-12-14", "consumer", url, embedded),  # KO-PG is selected: GRU + MLflow on real data
        ("planted", "2022-12-28", "technology", planted_url, planted),
    ]
    columns = [
        "raw_bars",
        "correlation_matrix",
        "cointegrated_pairs",
        "garch_models",
        "model_selection",
        "gru_models",
        "trading_config",
    ]
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


def overhead(repeats: int = 5) -> None:
    import cProfile
    import pstats
    import statistics

    from pairs_assets import partitions

    url = f"sqlite:///{paths().home / 'bench.sqlite'}"
    universe = load_universe(paths().universe_file)
    embedded = EmbeddedBarSource()
    preload_history(url, embedded, universe.all_symbols, "2022-12-28", DEFAULT_STRATEGY.history_sessions + 20)
    from pairs_assets.data import EMBEDDED_HISTORY_START
    from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS

    resources = resources_for(url, embedded)
    # `pairs demo` / `pairs daily` runs log nothing on the console (cli._quiet); Dagster's default
    # console logger prints a DEBUG line per event, which is overhead of its own
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    pairs_storage = {
        "event_log_storage": {
            "module": "resources.dagster_sqlite_storage",
            "class": "PairsSqliteEventLogStorage",
            "config": {},
        }
    }

    def run(instance, date: str, run_config: dict | None):
        return dg.materialize(
            DAILY_ASSETS,
            partition_key=partitions.partition_key(date, "industrial"),
            resources=resources,
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
        )

    print(f"one partition (2022-12-28|industrial, {len(DAILY_ASSETS)} assets), median of {repeats}:")
    print(f"{'instance':<44} {'console':<9} {'wall s':>7} {'bodies s':>9} {'overhead s':>11}")
    cases = [
        ("SQLite, PairsSqliteEventLogStorage (dagster.yaml)", pairs_storage, quiet, "quiet"),
        ("SQLite, PairsSqliteEventLogStorage (dagster.yaml)", pairs_storage, None, "DEBUG"),
        ("SQLite, Dagster's SqliteEventLogStorage", None, quiet, "quiet"),
    ]
    for label, overrides, run_config, console in cases:
        with (
            tempfile.TemporaryDirectory() as home,
            dg.instance_for_test(temp_dir=home, overrides=overrides) as instance,
        ):
            run(instance, "2022-12-27", quiet)  # warm-up
            walls, bodies = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                result = run(instance, "2022-12-28", run_config)
                walls.append(time.perf_counter() - t0)
                bodies.append(sum(step_seconds(result).values()))
        wall, body = statistics.median(walls), statistics.median(bodies)
        print(f"{label:<44} {console:<9} {wall:>7.2f} {body:>9.2f} {wall - body:>11.2f}")
    print()

    stack = contextlib.ExitStack()
    home = stack.enter_context(tempfile.TemporaryDirectory())
    instance = stack.enter_context(dg.instance_for_test(temp_dir=home, overrides=pairs_storage))
    run(instance, "2022-12-27", quiet)
    profile = cProfile.Profile()
    profile.enable()
    t0 = time.perf_counter()
    run(instance, "2022-12-28", quiet)
    profiled_wall = time.perf_counter() - t0
    profile.disable()
    stack.close()
    stats = pstats.Stats(profile).stats

    def cumulative(function_name: str, file_part: str) -> float:
        return sum(v[3] for (f, _, name), v in stats.items() if name == function_name and file_part in f)

    rows = [
        (
            "fetch_external_input_asset_version_info",
            cumulative("fetch_external_input_asset_version_info", "data_version_cache"),
        ),
        ("  time-window mapping (_offsetted_datetime)", cumulative("_offsetted_datetime", "mapping/time_window")),
        (
            "  get_prev_partition_window calls",
            sum(v[1] for (f, _, n), v in stats.items() if n == "get_prev_partition_window"),
        ),
        (
            "  multi-dimension subsets (_get_dependency_partitions_subset)",
            cumulative("_get_dependency_partitions_subset", "mapping/multi"),
        ),
        (
            "  exclusion lists rebuilt per window (_build_exclusion_iterator_list)",
            cumulative("_build_exclusion_iterator_list", "definition/time_window"),
        ),
        ("events logged (log_dagster_event)", cumulative("log_dagster_event", "log_manager")),
        ("event log writes (store_event_batch)", cumulative("store_event_batch", "dagster_sqlite_storage")),
        ("run creation (create_run_for_job)", cumulative("create_run_for_job", "run_domain")),
    ]
    print(f"under cProfile (wall {profiled_wall:.2f} s):")
    for label, value in rows:
        unit = "" if isinstance(value, int) else " s"
        share = f"  ({value / profiled_wall:.0%} of wall)" if not isinstance(value, int) else ""
        print(f"  {label:<72} {value:>8.2f}{unit}{share}" if unit else f"  {label:<72} {value:>8}")

    pdef = partitions.daily_partitions_def(EMBEDDED_HISTORY_START, universe.sector_names)
    subset = pdef.subset_with_partition_keys([partitions.partition_key("2022-12-28", "industrial")])
    n_exclusions = len(pdef.get_partitions_def_for_dimension("date").exclusions)
    print(f"\nlookback mapping of one partition alone ({n_exclusions} holiday exclusions), median of 3:")
    print(f"{'sessions':>8} {'ms':>8}")
    for sessions in (
        1,
        DEFAULT_STRATEGY.formation_window,
        DEFAULT_STRATEGY.garch_window + 1,
        DEFAULT_STRATEGY.history_sessions,
    ):
        mapping = lookback_mapping(sessions)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            mapping.get_upstream_mapped_partitions_result_for_partitions(subset, pdef, pdef)
            times.append(time.perf_counter() - t0)
        print(f"{sessions:>8} {statistics.median(times) * 1e3:>8.0f}")


def lookback_mapping(sessions: int) -> dg.MultiPartitionMapping:
    """The ``sessions`` date partitions ending at a partition's own date, same sector: the mapping the
    stages declared on raw_bars before issue 16 (they now depend on their own session only)."""
    return dg.MultiPartitionMapping(
        {
            "date": dg.DimensionPartitionMapping(
                "date", dg.TimeWindowPartitionMapping(start_offset=-(sessions - 1), end_offset=0)
            ),
            "sector": dg.DimensionPartitionMapping("sector", dg.IdentityPartitionMapping()),
        }
    )


if __name__ == "__main__":
    if "--overhead" in sys.argv:
        rest = [a for a in sys.argv[1:] if a != "--overhead"]
        overhead(int(rest[0]) if rest else 5)
    else:
        main()
