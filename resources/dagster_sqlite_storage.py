"""Moved to :mod:`pairs_assets.instance.sqlite`; kept so an existing dagster.yaml that names this module
(``instance_class``, ``event_log_storage``) still opens."""

from pairs_assets.instance.sqlite import (
    CHECK_BATCH,
    PairsDagsterInstance,
    PairsSqliteEventLogStorage,
    record_check_evaluations,
)

__all__ = ["CHECK_BATCH", "PairsDagsterInstance", "PairsSqliteEventLogStorage", "record_check_evaluations"]
