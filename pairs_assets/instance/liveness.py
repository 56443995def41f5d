"""Where a pid means one process, whether it still runs, and what a closed run is.

Shared by the dead-run recovery (``pairs_assets.run_recovery``) and the event logs (the closed-run
guard, the SQLite write journal's repair), which sit below it in the import layers.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

#: Statuses after which no step of the run may record anything: its outcome is decided.
CLOSED_STATUSES = frozenset({dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "unknown"


def this_host() -> str:
    """``<hostname>/<boot id>/<pid namespace>``: where a pid means one process. A restarted machine
    is another host (its pids start over); so is a container that shares the machine's hostname
    (``network_mode: host``) but numbers its processes apart."""
    return f"{socket.gethostname()}/{boot_id()}/{_pid_namespace()}"


def _process_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in epoch seconds) of ``pid`` from /proc (Linux); None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def process_alive_since(pid: int, since: float) -> bool:
    """Whether a live process ``pid`` exists that started no later than ``since`` (epoch seconds).

    A zombie (killed, not yet reaped by its parent — a run worker of a code server that is still up)
    is not alive: it executes nothing and will never report again.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    state = _process_state(pid)
    if state is None:
        return True
    letter, started = state
    return letter not in ("Z", "X") and started <= since + 1.0


def closed_run_message(run_id: str, status: str, what: str) -> str:
    return (
        f"run {run_id} is {status}: {what} refused — this step outlived its run (its run worker died, or "
        "the run was failed or canceled) and may not write into it; rerun the partition instead"
    )


def ensure_run_open(instance: dg.DagsterInstance, run_id: str, what: str) -> None:
    """Raise :class:`~pairs_assets.errors.RunClosedError` when run ``run_id`` is FAILED or CANCELED.

    ``what`` names the write refused (``"registering pairs_trading_gru_garch_technology for
    AAPL-MSFT"``). A run that is not found (a test's ephemeral instance) is not judged.
    """
    from pairs_assets.errors import RunClosedError

    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in CLOSED_STATUSES:
        raise RunClosedError(closed_run_message(run_id, run.status.value, what))
