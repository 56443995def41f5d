"""Dagster instance storage on PostgreSQL that accepts ``postgresql://`` and ``postgresql+psycopg2://``.

With SQLAlchemy 2.1 a plain ``postgresql://`` URL selects psycopg 3, whose server-side parameter
binding rejects a statement dagster-postgres 0.29 runs after every event it stores
(``NOTIFY run_events, :notify_id`` → ``syntax error at or near "$1"``): runs would fail on their
first event. These subclasses of dagster-postgres's run, event-log and schedule storages send both
schemes through psycopg2, so ``PAIRS_DAGSTER_DB_URL`` may use either. deploy/dagster.yaml names
them; the instance reference Dagster hands to run and step processes names them too, so every
process (webserver, daemon, code server, run, ``pairs worker``) opens the database the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._core.storage.config import pg_config
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

_PLAIN_SCHEMES = ("postgresql://", "postgres://")


def psycopg2_url(url: str) -> str:
    """``postgresql://…`` (or ``postgres://…``) → ``postgresql+psycopg2://…``; other URLs unchanged."""
    for scheme in _PLAIN_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _kwargs(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
    }


class _Psycopg2Url:
    """Storage mixin: the URL goes through psycopg2 whatever its scheme; config as dagster-postgres's."""

    def __init__(self, postgres_url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(psycopg2_url(postgres_url), *args, **kwargs)

    @classmethod
    def config_type(cls):
        return pg_config()

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
        return cls(inst_data=inst_data, **_kwargs(config_value))


class PairsPostgresRunStorage(_Psycopg2Url, PostgresRunStorage):
    """dagster-postgres run storage; a plain ``postgresql://`` URL goes through psycopg2."""


class PairsPostgresEventLogStorage(_Psycopg2Url, PostgresEventLogStorage):
    """dagster-postgres event log (runs' events, materializations, check results) through psycopg2."""


class PairsPostgresScheduleStorage(_Psycopg2Url, PostgresScheduleStorage):
    """dagster-postgres schedule/sensor state and ticks through psycopg2."""
