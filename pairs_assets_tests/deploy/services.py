"""Throwaway PostgreSQL databases and RabbitMQ vhosts for the deployment tests, and process helpers.

Every helper skips when its service is absent, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from pairs_assets_tests.conftest import POSTGRES_ADMIN_URL, _in_ci

RABBIT_URL = os.environ.get("PAIRS_TEST_RABBITMQ_HOST", "127.0.0.1")


def _unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


def plain_url(url: str) -> str:
    """``postgresql+psycopg2://…`` → ``postgresql://…`` (SQLAlchemy then uses psycopg 3)."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


@contextlib.contextmanager
def postgres_databases(*labels: str) -> Iterator[dict[str, str]]:
    """Fresh databases ``{label: url}`` (``postgresql+psycopg2://`` URLs), dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
    suffix = uuid.uuid4().hex[:10]
    names = {label: f"pairs_deploy_{label}_{suffix}" for label in labels}
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield {label: f"{base}/{name}" for label, name in names.items()}
    finally:
        from resources import market_data

        for name in names.values():
            for url in (f"{base}/{name}", plain_url(f"{base}/{name}")):
                engine = market_data._ENGINES.pop(url, None)
                if engine is not None:
                    engine.dispose()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost (guest has all permissions); yields its AMQP URL; deleted afterwards."""
    try:
        with socket.create_connection((RABBIT_URL, 5672), timeout=2):
            pass
    except OSError as exc:
        _unavailable(f"RabbitMQ not reachable on {RABBIT_URL}:5672: {exc}")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        _unavailable("rabbitmqctl not found: cannot create a test vhost")
    vhost = f"pairs_test_{uuid.uuid4().hex[:10]}"
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"amqp://guest:guest@{RABBIT_URL}:5672/{vhost}"
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], cwd: str, log_path: str) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (so its children are stopped with it)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc._pairs_log = log  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group started by :func:`start`, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    proc._pairs_log.close()  # type: ignore[attr-defined]


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def wait_until(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.5, procs=(), logs=()):
    """Poll ``predicate`` until it returns a truthy value; fail with the processes' logs on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                break
        else:
            time.sleep(poll)
            continue
        break
    tails = "\n".join(f"--- {path}\n{open(path, errors='replace').read()[-3000:]}" for path in logs)
    pytest.fail(f"timed out waiting for {what}\n{tails}")
