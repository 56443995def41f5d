"""Shared fixtures. PAIRS_HOME points at a fresh temporary folder before any project import, so
tests never touch a developer's real home; the folder is removed when the session ends. PostgreSQL
tests get their own database, dropped after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings

import pytest

_SESSION_HOME = tempfile.mkdtemp(prefix="pairs_home_test_")
os.environ["PAIRS_HOME"] = _SESSION_HOME
os.environ.pop("PAIRS_BARS_FILE", None)
os.environ.pop("PAIRS_UNIVERSE_FILE", None)
os.environ.pop("PAIRS_DATABASE_URL", None)
# the signal path's mode is each test's to choose: a developer's `PAIRS_SIGNAL_REPLAY=1` (set for `pairs dev`)
# or own live source must not change what the signal tests see
for _name in ("PAIRS_SIGNAL_REPLAY", "PAIRS_LIVE_SOURCE", "PAIRS_ALPACA_FEED"):
    os.environ.pop(_name, None)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_HOME}/mlflow/mlflow.db"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

POSTGRES_ADMIN_URL = os.environ.get("PAIRS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def pytest_unconfigure(config) -> None:
    """Remove the session's PAIRS_HOME (the per-test homes are pytest's tmp_path, cleaned by pytest)."""
    try:
        shutil.rmtree(_SESSION_HOME)
    except FileNotFoundError:
        pass
    except OSError as exc:  # say so rather than leave a folder behind silently
        warnings.warn(f"could not remove the test PAIRS_HOME {_SESSION_HOME}: {exc}", stacklevel=1)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def pairs_home() -> str:
    return _SESSION_HOME


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'market_data.sqlite'}"


@pytest.fixture()
def postgres_url():
    """A fresh PostgreSQL database on 127.0.0.1:5432, dropped after the test.

    Skips when PostgreSQL is not reachable, except under CI=true, where it fails.
    """
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if _in_ci():
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable: {exc.orig}")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    name = f"pairs_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from resources import market_data

        engine = market_data._ENGINES.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()
