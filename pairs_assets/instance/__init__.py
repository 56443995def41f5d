"""The Dagster instance's storages: where the project relies on private Dagster names (DESIGN.md §1).

* ``event_log`` — batched check bookkeeping and the bulk check status, shared by both event logs;
* ``sqlite`` — the local instance (``PairsDagsterInstance``) and its batched SQLite event log;
* ``postgres`` — dagster-postgres's storages through psycopg2, with batched range writes.

Each module's docstring says which private Dagster 1.13 names it relies on; re-read them on a Dagster
upgrade. ``resources.dagster_sqlite_storage`` and ``resources.dagster_storage`` re-export the classes
(an existing dagster.yaml names them).
"""
