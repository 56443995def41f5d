"""A range run of the daily stage assets (single-run backfill) against one-partition runs.

The range run computes every session of the range in one run (windows sliced from one panel per
sector, the Engle-Granger stage skipped where the walk-forward's vectorised screen shows no pair
can pass) and writes one output per partition. Its outputs must equal those of one-partition runs
of the same partitions — every stage's frame, the trading config field for field (the GRU's
registry version and run id aside: each run registers its own) — and its checks must be recorded
per partition. 2022-12-13|consumer selects KO-PG under the seed settings (GRU trained, registered,
in the config); 2022-12-14|energy selects nothing.

Point-in-time: the one-partition run of the range's *first* session reads a store that holds no
bar after that session, while the range run's store holds the rest of the range; equal outputs
show the range run gave that partition no later bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets.settings import paths
from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS, materialize, preload_history, resources_for
from resources.bar_sources import EmbeddedBarSource

FAST = {"gru_max_epochs": 3, "gru_hidden": 16}
SYMBOLS = ["BBY", "HD", "KO", "PEP", "PG", "WMT", "CVX", "RRC", "XOM"]
STAGES = ["correlation_matrix", "cointegrated_pairs", "garch_models", "model_selection", "gru_models"]
REGISTRY_FIELDS = {"model_version", "mlflow_run_id", "train_seconds"}  # each run registers its own model
CHECKS = {
    "correlation_above_min",
    "eg_pvalue_below_max",
    "residual_diagnostics",
    "garch_converged",
    "composite_above_min",
}


def _use_home(monkeypatch, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PAIRS_HOME", str(home))
    paths.cache_clear()


def _outputs(date: str, sector: str) -> dict:
    out = {s: pd.read_parquet(paths().outputs_dir / s / date / f"{sector}.parquet") for s in STAGES}
    out["trading_config"] = json.loads((paths().outputs_dir / "trading_config" / date / f"{sector}.json").read_text())
    return out


def _without_registry(document: dict) -> dict:
    document = json.loads(json.dumps(document))
    for pair in document["pairs"]:
        if pair.get("model"):
            pair["model"] = {k: v for k, v in pair["model"].items() if k not in {"version", "mlflow_run_id"}}
    return document


def _recorded_inputs(result) -> dict[tuple[str, str], dict]:
    """(asset, partition) → the window(s) and input fingerprint its materialization recorded."""
    fields = ("window", "backtest_window", "history_window", "input_fingerprint")
    out = {}
    for event in result.get_asset_materialization_events():
        metadata = event.event_specific_data.materialization.metadata
        out[event.asset_key.to_user_string(), str(event.partition)] = {
            f: metadata[f].value for f in fields if f in metadata
        }
    return out


def test_range_run_equals_one_partition_runs_with_checks_per_partition(tmp_path, monkeypatch):
    source = EmbeddedBarSource()
    try:
        # the range: 2022-12-13...2022-12-14 × consumer, energy (4 partitions) in one run
        _use_home(monkeypatch, tmp_path / "range")
        range_url = f"sqlite:///{tmp_path / 'range.sqlite'}"
        strategy = resources_for(range_url, source, **FAST)["strategy"]
        preload_history(range_url, source, SYMBOLS, "2022-12-14", strategy.history_sessions + 2)
        result = dg.materialize(
            DAILY_ASSETS,
            selection=[*STAGES, "trading_config"],
            resources=resources_for(range_url, source, **FAST),
            instance=(instance := dg.DagsterInstance.ephemeral()),
            tags={
                ASSET_PARTITION_RANGE_START_TAG: "2022-12-13|consumer",
                ASSET_PARTITION_RANGE_END_TAG: "2022-12-14|energy",
            },
        )
        assert result.success
        keys = {"2022-12-13|consumer", "2022-12-13|energy", "2022-12-14|consumer", "2022-12-14|energy"}
        for stage in [*STAGES, "trading_config"]:
            done = {
                str(e.partition)
                for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == stage
            }
            assert done == keys, stage
        # recorded in batches straight into the run's event log (not through the step's event stream)
        records = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        checked = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        evaluations = {(e.check_name, str(e.partition)) for e in checked}
        assert len(checked) == len(evaluations)  # one evaluation per check and partition
        assert evaluations == {(c, k) for c in CHECKS for k in keys}
        in_range = {k: _outputs(*k.split("|")) for k in ["2022-12-13|consumer", "2022-12-14|energy"]}
        range_inputs = _recorded_inputs(result)
        assert [p["pair_id"] for p in in_range["2022-12-13|consumer"]["trading_config"]["pairs"]] == ["KO-PG"]
        assert in_range["2022-12-13|consumer"]["trading_config"]["pairs"][0]["model"] is not None
        assert in_range["2022-12-14|energy"]["trading_config"]["pairs"] == []

        # one-partition runs: the range's first session on a store ending at that session
        singles = {}
        for key, as_of in [("2022-12-13|consumer", "2022-12-13"), ("2022-12-14|energy", "2022-12-14")]:
            date, sector = key.split("|")
            _use_home(monkeypatch, tmp_path / f"single_{date}_{sector}")
            url = f"sqlite:///{tmp_path / f'single_{date}_{sector}.sqlite'}"
            preload_history(url, source, SYMBOLS, as_of, strategy.history_sessions + 2)
            single = materialize(
                date, sector, resources_for(url, source, **FAST), selection=[*STAGES, "trading_config"]
            )
            assert single.success
            singles[key] = _outputs(date, sector)
            single_inputs = _recorded_inputs(single)
            # each partition of the range records its own window and input fingerprint, as its run alone does
            for stage in [*STAGES, "trading_config"]:
                assert range_inputs[stage, key] == single_inputs[stage, key], (stage, key)
            assert range_inputs["correlation_matrix", key]["input_fingerprint"]
    finally:
        monkeypatch.undo()
        paths.cache_clear()

    for key, single in singles.items():
        ranged = in_range[key]
        for stage in STAGES[:4]:
            pd.testing.assert_frame_equal(ranged[stage], single[stage], check_exact=True, obj=f"{key} {stage}")
        gru_r, gru_s = (f.drop(columns=sorted(REGISTRY_FIELDS)) for f in (ranged["gru_models"], single["gru_models"]))
        pd.testing.assert_frame_equal(gru_r, gru_s, check_exact=True, obj=f"{key} gru_models")
        assert _without_registry(ranged["trading_config"]) == _without_registry(single["trading_config"]), key


@pytest.mark.parametrize("bad", ["not a dict", {"2022-12-13|consumer": pd.DataFrame()}])
def test_the_io_manager_refuses_a_range_output_that_is_not_one_object_per_partition(tmp_path, bad):
    from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
    from resources.io_manager import PartitionedFileIOManager

    context = dg.build_output_context(
        asset_key=dg.AssetKey("correlation_matrix"),
        asset_partitions_def=EMBEDDED_DAILY,
        asset_partition_key_range=dg.PartitionKeyRange("2022-12-13|consumer", "2022-12-14|consumer"),
    )
    with pytest.raises((TypeError, ValueError), match="range run"):
        PartitionedFileIOManager(base_dir=str(tmp_path)).handle_output(context, bad)
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_failed_blocking_check_in_one_partition_of_a_range_stops_the_downstream_steps(tmp_path, monkeypatch):
    """composite_above_min (blocking ERROR) fails in one partition: recorded against that partition
    only, the model_selection step fails, gru_models and trading_config do not run."""
    from pairs_assets import checks

    real = checks.model_selection_results
    calls = []

    def failing_once(scores, strategy):
        results = real(scores, strategy)
        calls.append(1)
        if len(calls) == 1:  # 2022-12-13|industrial (seed settings: every session its own formation)
            results = [
                dg.AssetCheckResult(
                    check_name=r.check_name,
                    asset_key=r.asset_key,
                    passed=False,
                    severity=r.severity,
                    metadata={"planted": "failure"},
                )
                for r in results
            ]
        return results

    monkeypatch.setattr(checks, "model_selection_results", failing_once)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    strategy = resources_for(url, source)["strategy"]
    preload_history(url, source, ["GE"], "2022-12-14", strategy.history_sessions + 2)
    result = dg.materialize(
        DAILY_ASSETS,
        selection=[*STAGES, "trading_config"],
        resources=resources_for(url, source),
        instance=(instance := dg.DagsterInstance.ephemeral()),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-13|industrial",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-14|industrial",
        },
        raise_on_error=False,
    )
    assert not result.success
    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed_steps == {"model_selection"}
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == {"correlation_matrix", "cointegrated_pairs", "garch_models", "model_selection"}
    records = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    selection = {
        str(e.partition): e.passed
        for e in (r.event_log_entry.dagster_event.event_specific_data for r in records)
        if e.check_name == "composite_above_min"
    }
    assert selection == {"2022-12-13|industrial": False, "2022-12-14|industrial": True}
