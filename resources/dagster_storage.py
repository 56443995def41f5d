"""Moved to :mod:`pairs_assets.instance.postgres`; kept so an existing dagster.yaml that names this
module still opens."""

from pairs_assets.instance.postgres import (
    PairsPostgresEventLogStorage,
    PairsPostgresRunStorage,
    PairsPostgresScheduleStorage,
    psycopg2_url,
)

__all__ = ["PairsPostgresEventLogStorage", "PairsPostgresRunStorage", "PairsPostgresScheduleStorage", "psycopg2_url"]
