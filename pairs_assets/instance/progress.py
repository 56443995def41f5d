"""Progress of a long in-process run, read from the instance's event log while the run works.

``pairs load-bars`` (and the load step of ``pairs demo``) is one Dagster run. Creating it records
one planned materialization per partition and a planned check per check (7,920 partitions for
1,320 sessions × 6 sectors); the run then reads, validates and writes the range, and records one
materialization and the checks per partition (6 check evaluations each). The line says which of
these it is doing. :class:`RunProgress` follows the run from a
background thread and prints what it has done: a line that rewrites itself on a terminal, a
line every few seconds otherwise (logs, CI).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import dagster as dg


class RunProgress:
    """Print ``label: done/total partitions recorded, elapsed, rate`` while run ``run_id`` works.

    Parameters
    ----------
    instance : the instance the run writes its events to.
    run_id : the run to follow (pass the same id to ``execute_in_process(run_id=…)``).
    total : partitions the run materializes.
    checks_total : check evaluations the run records (checks × partitions), 0 to leave them out.
    label : what the line calls the run (``raw_bars 2017-10-30...2022-12-28``).
    write : where lines go (stdout by default: stderr is for the one-line error); ``tty`` makes one line rewrite itself.
    interval : seconds between lines (``None``: 0.5 on a terminal, 10 otherwise).
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        total: int,
        label: str,
        checks_total: int = 0,
        write: Callable[[str], None] | None = None,
        tty: bool | None = None,
        interval: float | None = None,
    ):
        self.instance, self.run_id, self.total, self.label = instance, run_id, total, label
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self.done = 0
        self.checks_done = 0
        self.planned = 0  # planned materializations recorded (the run's creation)
        self.started = False  # the run's RUN_START is recorded
        self.checks_total = checks_total
        self._cursor: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pairs-progress", daemon=True)
        self._t0 = 0.0

    def __enter__(self) -> RunProgress:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self._emit(final=True)

    def _poll(self) -> None:
        try:
            counted = self._count()
        except Exception:  # noqa: BLE001 - the run may not exist yet; progress must never break the run
            return
        if counted is not None:
            self.done, self.checks_done, self.planned, self.started = counted
            return
        try:
            connection = self.instance.get_records_for_run(
                self.run_id,
                cursor=self._cursor,
                of_type={
                    dg.DagsterEventType.ASSET_MATERIALIZATION,
                    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                    dg.DagsterEventType.RUN_START,
                },
            )
        except Exception:  # noqa: BLE001 - as above
            return
        self._cursor = connection.cursor or self._cursor
        for record in connection.records:
            kind = record.event_log_entry.dagster_event_type
            if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
                self.done += 1
            elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                self.checks_done += 1
            elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
                self.planned += 1
            else:
                self.started = True

    def _count(self) -> tuple[int, int, int, bool] | None:
        """(materializations, check evaluations, planned materializations, run started) of the run
        counted in SQL, or None off a SQL event log.

        Reading the records back instead deserializes every event: 55,000 for ``pairs demo``'s
        load, a fifth of the load's time.
        """
        import sqlalchemy as sa
        from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as events
        from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

        storage = self.instance.event_log_storage
        if not isinstance(storage, SqlEventLogStorage):
            return None
        kinds = {
            kind.value: 0
            for kind in (
                dg.DagsterEventType.ASSET_MATERIALIZATION,
                dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                dg.DagsterEventType.RUN_START,
            )
        }
        query = (
            sa.select(events.c.dagster_event_type, sa.func.count())
            .where(events.c.run_id == self.run_id, events.c.dagster_event_type.in_(list(kinds)))
            .group_by(events.c.dagster_event_type)
        )
        with storage.run_connection(self.run_id) as conn:
            for kind, n in conn.execute(query):
                kinds[kind] = n
        return (
            kinds[dg.DagsterEventType.ASSET_MATERIALIZATION.value],
            kinds[dg.DagsterEventType.ASSET_CHECK_EVALUATION.value],
            kinds[dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value],
            kinds[dg.DagsterEventType.RUN_START.value] > 0,
        )

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        if self.done == 0 and not self.started:
            return (
                f"{self.label}: creating the run, {self.planned:,}/{self.total:,} planned partitions recorded … "
                f"{elapsed:.0f}s"
            )
        if self.done == 0:
            return f"{self.label}: run started: reading, validating and writing the bars … {elapsed:.0f}s"
        rate = (self.done + self.checks_done) / elapsed if elapsed > 0 else 0.0
        checks = f", checks {self.checks_done:,}/{self.checks_total:,}" if self.checks_total else ""
        return (
            f"{self.label}: bars written; {self.done:,}/{self.total:,} partitions recorded{checks}, {elapsed:.0f}s elapsed, "
            f"{rate:.0f} events/s"
        )

    def _emit(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.write("\r" + text + ("\n" if final else ""))
        else:
            self.write(text + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()
            self._emit()
