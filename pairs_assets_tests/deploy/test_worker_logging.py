"""`pairs worker` logs a Dagster event line at its own level (issue 21 item 12: DEBUG events came out
as WARNING). A real Celery worker (solo pool, in-memory broker: no RabbitMQ needed) built by
``make_worker_app`` runs a task that writes a DEBUG record through the handler Dagster's console
logger uses (``coloredlogs.StandardErrorHandler``: the stderr current at each record)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import logging, os, signal, sys, threading
    import coloredlogs
    from celery.signals import task_postrun, worker_ready
    from pairs_assets.worker import make_worker_app

    app = make_worker_app("memory://", "cache+memory://")
    if sys.argv[1] == "celery-default":
        app.conf.worker_redirect_stdouts = True  # what the worker did before

    @app.task(name="emit_dagster_debug")
    def emit():
        logger = logging.Logger("dagster", level=logging.DEBUG)  # as dagster's console logger is built
        handler = coloredlogs.StandardErrorHandler()
        handler.setFormatter(logging.Formatter("%(name)s - %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.debug("STEP_START - Started execution of step")

    @worker_ready.connect
    def send(**_):
        threading.Thread(target=emit.delay).start()

    @task_postrun.connect
    def done(**_):
        os.kill(os.getpid(), signal.SIGTERM)  # warm shutdown once the task ran

    app.worker_main(["worker", "--pool=solo", "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"])
    """
)


@pytest.mark.parametrize("config", ["pairs", "celery-default"])
def test_a_dagster_debug_line_keeps_its_level_in_the_worker_log(config, tmp_path):
    script = tmp_path / "worker_script.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), config],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,  # generous: a bound on a hung worker only
    )
    output = result.stdout + result.stderr
    line = next((text for text in output.splitlines() if "STEP_START - Started execution of step" in text), None)
    assert line is not None, output[-3000:]
    assert "dagster - DEBUG - STEP_START" in line
    if config == "pairs":
        assert "WARNING" not in line, line
    else:  # the repro: Celery's stdout redirect re-logs the line at WARNING
        assert "WARNING/MainProcess" in line, line
