"""kill -9 during a run (issue 9, item 8): the run is marked failed, not STARTED forever.

Two real processes each execute a run on one local instance and block inside a step; one is
killed with SIGKILL. The sweep marks that run FAILURE (naming process and partition) and leaves
the live one alone; a second sweep finds nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from pairs_assets.run_recovery import fail_dead_runs

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    import dagster as dg

    @dg.op
    def block(context) -> None:
        Path(sys.argv[1]).write_text(context.run_id)
        threading.Event().wait()  # until killed

    @dg.job
    def blocking_job():
        block()

    with dg.DagsterInstance.get() as instance:
        blocking_job.execute_in_process(instance=instance, tags={"dagster/partition": sys.argv[2]})
    """
)


def _await(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"the run did not reach its step within {timeout}s"
        time.sleep(0.05)
    return path.read_text()


@pytest.fixture()
def instance_home(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
        pass  # the storage exists before two processes open it
    return home


def test_a_run_killed_with_sigkill_is_marked_failed_and_a_live_one_is_left_alone(tmp_path, instance_home):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "DAGSTER_HOME": str(instance_home)}
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"{name}.started"), f"2022-12-28|{name}"],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        )
        for name in ("energy", "consumer")
    }
    try:
        run_ids = {name: _await(tmp_path / f"{name}.started", p) for name, p in processes.items()}
        processes["energy"].send_signal(signal.SIGKILL)
        processes["energy"].wait(timeout=60)

        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(instance_home))) as instance:
            killed = instance.get_run_by_id(run_ids["energy"])
            assert killed.status == dg.DagsterRunStatus.STARTED  # what kill -9 leaves behind

            (dead,) = fail_dead_runs(instance)

            assert dead.run_id == run_ids["energy"] and dead.pid == processes["energy"].pid
            assert dead.partitions == "2022-12-28|energy"
            assert instance.get_run_by_id(run_ids["energy"]).status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(run_ids["energy"], of_type=dg.DagsterEventType.RUN_FAILURE).records
            assert f"process {processes['energy'].pid}, which is gone" in failure[0].event_log_entry.dagster_event.message
            assert instance.get_run_by_id(run_ids["consumer"]).status == dg.DagsterRunStatus.STARTED  # alive: untouched
            assert fail_dead_runs(instance) == []
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)
            p.stderr.close()
