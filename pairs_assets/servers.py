"""Running a server command (``dagster dev``, ``mlflow server``, ``dagster code-server start``) as the
child of a ``pairs`` command, so that stopping ``pairs`` stops the server and everything it started.

Before (issue 21 item 10): ``pairs dev`` and ``pairs mlflow-server`` ran the server with
``subprocess.call``; a SIGTERM (a service manager's stop, ``kill``) ended the ``pairs`` process only,
and the server and its children kept the ports bound. Now the server runs in its own process group
and session; SIGTERM, SIGINT and SIGHUP to ``pairs`` are passed to that whole group; whatever is left
of the group once the server has exited — or ``grace_s`` after the signal — gets SIGKILL.

Also :func:`refuse_served_port`: gRPC servers bind with ``SO_REUSEPORT`` on Linux, so a second
``dagster code-server start`` on a port already served starts *beside* the first one and the kernel
spreads connections over both — two code versions serving one location. ``pairs code-server``
refuses that port first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

from pairs_assets.errors import PairsError

#: seconds a server gets to stop after the signal before its process group is killed
DEFAULT_GRACE_S = 30.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class PortInUseError(PairsError, OSError):
    """A server would start on a port something already serves."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _end_group(pgid: int, grace_s: float) -> None:
    """SIGTERM what is left of the process group ``pgid``, SIGKILL it after ``grace_s``."""
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the group's members are not our children: nothing to wait on but the group itself
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_server(cmd: Sequence[str], env: dict[str, str] | None = None, *, grace_s: float = DEFAULT_GRACE_S) -> int:
    """Run ``cmd`` until it exits; return its exit status (128 + n after signal n, as a shell says).

    The server is the leader of a new process group; a SIGTERM/SIGINT/SIGHUP to this process goes to
    that whole group, and the group is killed ``grace_s`` seconds later if it has not stopped. When
    the server exits, the rest of its group (a child it left behind) is ended too.
    """
    # The handlers go in before the server starts: a signal that arrives while it starts is held and
    # passed on once it runs (before, it killed this process and left the server behind), and the
    # server gets every forwarded signal at its default action — exec resets a *caught* signal, but
    # one this process inherited as ignored (a parent that ignores SIGTERM) would have stayed ignored
    # in the server, which then outlived SIGTERM until the SIGKILL fallback (issue 21 item 11).
    started: list[subprocess.Popen] = []
    held: list[int] = []
    stop_by: list[float] = []

    def forward(signum, _frame) -> None:
        if not stop_by:
            stop_by.append(time.monotonic() + grace_s)
        if not started:
            held.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started[0].pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    proc = None
    try:
        proc = subprocess.Popen(list(cmd), env=env, start_new_session=True)
        started.append(proc)
        for signum in held:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)
        while True:
            try:
                status = proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if stop_by and time.monotonic() > stop_by[0]:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc is not None:
            if proc.poll() is None:  # an exception in this process: do not leave the server behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _end_group(proc.pid, grace_s)
    return 128 - status if status < 0 else status


def refuse_served_port(host: str, port: int, what: str) -> None:
    """Raise :class:`PortInUseError` when something accepts connections on ``host:port``."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=2):
            pass
    except OSError:
        return
    raise PortInUseError(
        f"{host}:{port} is already served (another {what}?): a second one would bind beside it (SO_REUSEPORT) and "
        f"share its connections; stop it first or choose another --port"
    )
