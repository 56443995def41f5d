"""Refresh model_rankings and model_trends after every successful daily_pairs run."""

import dagster as dg

from pairs_assets.jobs import daily_pairs, model_performance_job


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_pairs],
    request_job=model_performance_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful daily_pairs run, rebuild the model rankings and trends.",
)
def model_performance_refresh(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"model_performance:{context.dagster_run.run_id}")
