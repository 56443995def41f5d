"""model_rankings / model_trends update from the model_performance table; the refresh sensor fires."""

import dagster as dg

from pairs_assets.assets.model_performance import model_rankings, model_trends
from pairs_assets.definitions import defs
from resources.market_data import MarketDataStore, model_performance_table


def _row(as_of, pair, f1):
    return {
        "as_of_session": as_of,
        "sector": "technology",
        "pair_id": pair,
        "mlflow_run_id": f"r-{as_of}-{pair}",
        "model_name": "pairs_trading_gru_garch_technology",
        "model_version": as_of[-2:],
        "test_f1": f1,
        "best_baseline_f1": 0.5,
        "beats_baselines": f1 > 0.5,
        "status": "trained",
        "reason": None,
    }


def test_rankings_and_trends_update(sqlite_url, pairs_home):
    store = MarketDataStore(database_url=sqlite_url)
    store.upsert_rows(
        model_performance_table, [_row("2022-12-27", "AAPL-MSFT", 0.6), _row("2022-12-27", "KO-PEP", 0.7)]
    )
    resources = {"store": store, "io_manager": defs.resources["io_manager"]}
    first = dg.materialize([model_rankings, model_trends], resources=resources, instance=dg.DagsterInstance.ephemeral())
    ranked = first.output_for_node("model_rankings")
    assert ranked["pair_id"].tolist() == ["KO-PEP", "AAPL-MSFT"]
    store.upsert_rows(model_performance_table, [_row("2022-12-28", "AAPL-MSFT", 0.8)])
    second = dg.materialize(
        [model_rankings, model_trends], resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert second.output_for_node("model_rankings")["pair_id"].tolist() == ["AAPL-MSFT", "KO-PEP"]
    trends = second.output_for_node("model_trends").set_index("pair_id")
    assert trends.loc["AAPL-MSFT", "n_models"] == 2 and trends.loc["AAPL-MSFT", "f1_slope_7"] > 0


def test_refresh_sensor_requests_the_performance_job_after_a_daily_run():
    sensor = defs.get_sensor_def("model_performance_refresh")
    assert sensor.job_name == "model_performance_job" or "model_performance_job" in [t.job_name for t in sensor.targets]
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            defs.resolve_job_def("daily_pairs"), run_id=None, tags={"dagster/partition": "2022-12-28|technology"}
        )
        from dagster._core.events import DagsterEvent, DagsterEventType

        event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name="daily_pairs")
        context = dg.build_run_status_sensor_context(
            sensor_name="model_performance_refresh",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=event,
            repository_def=defs.get_repository_def(),
        )
        request = sensor(context)
    assert request.run_key == f"model_performance:{run.run_id}"
