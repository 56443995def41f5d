"""The market data store: bars, trading configs, model performance, signals and orders.

SQLAlchemy Core on a SQLite file by default, PostgreSQL by URL (``postgresql://user@host:5432/db``
through psycopg 3, or ``postgresql+psycopg2://…``). A URL with a password comes through
``dg.EnvVar("PAIRS_DATABASE_URL")`` so the UI shows the variable's name; every message prints the
URL with its password masked (:func:`redact_url`). Bars are keyed by (symbol, timestamp, source) and
written with idempotent upserts in one transaction, so a re-run or a crash never leaves a partial
or doubled load. Timestamps are stored as naive UTC.

**Per strategy.** The trading configs, signals, orders and pair states carry a ``strategy`` column
(TEXT NOT NULL, default ``garch_gru`` — :data:`PRIMARY_STRATEGY`, today's strategy), part of the
uniqueness key wherever the key is per sector/pair/session: two strategies keep their own configs,
states and signals side by side. The broker's ``positions`` stay per (broker, symbol): they are the
account's, shared by every strategy. A store created before the column existed is migrated in place
when it is opened (:func:`migrate_strategy_column`: the column added with the default, the key
rebuilt; idempotent, on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from pairs_assets.errors import PairsError
from pairs_assets.util import redact_text, redact_url, to_naive_utc, to_utc
from resources.bars import BAR_COLUMNS, conform_bars, empty_bars, validate_bars

metadata = sa.MetaData()

#: the strategy of every row written before the ``strategy`` column existed (and the default of every API)
PRIMARY_STRATEGY = "garch_gru"


def _strategy_column(primary_key: bool) -> sa.Column:
    return sa.Column(
        "strategy", sa.Text, primary_key=primary_key, nullable=False, server_default=sa.text(f"'{PRIMARY_STRATEGY}'")
    )


bars_table = sa.Table(
    "bars",
    metadata,
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("timestamp", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("open", sa.Float),
    sa.Column("high", sa.Float),
    sa.Column("low", sa.Float),
    sa.Column("close", sa.Float, nullable=False),
    sa.Column("volume", sa.Float),
    sa.Column("trade_count", sa.Float),
    sa.Column("vwap", sa.Float),
)


@dataclasses.dataclass(frozen=True)
class StoredTradingConfig:
    """A ``trading_configs`` row: its partition, the file it was written to and the document's text."""

    as_of_session: str
    sector: str
    path: str
    text: str
    strategy: str = PRIMARY_STRATEGY

    @property
    def partition_key(self) -> str:
        return f"{self.as_of_session}|{self.sector}"


trading_configs_table = sa.Table(
    "trading_configs",
    metadata,
    sa.Column("as_of_session", sa.String(10), primary_key=True),
    sa.Column("sector", sa.String(64), primary_key=True),
    _strategy_column(primary_key=True),
    sa.Column("effective_session", sa.String(10), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("n_pairs", sa.Integer, nullable=False),
    sa.Column("input_fingerprint", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
)

model_performance_table = sa.Table(
    "model_performance",
    metadata,
    sa.Column("as_of_session", sa.String(10), primary_key=True),
    sa.Column("sector", sa.String(64), primary_key=True),
    sa.Column("pair_id", sa.String(40), primary_key=True),
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("model_name", sa.String(128)),
    sa.Column("model_version", sa.String(16)),
    sa.Column("test_f1", sa.Float),
    sa.Column("test_precision", sa.Float),
    sa.Column("test_recall", sa.Float),
    sa.Column("test_accuracy", sa.Float),
    sa.Column("test_roc_auc", sa.Float),
    sa.Column("best_baseline_f1", sa.Float),
    sa.Column("beats_baselines", sa.Boolean),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
)


def of_source(column: sa.ColumnElement, source: str) -> sa.ColumnElement:
    """``column`` is ``source`` or one of its proxy stand-ins (``<source>+proxy:<SYMBOL>``, as the
    stream labels a proxy's bars)."""
    return sa.or_(column == source, column.startswith(f"{source}+proxy:", autoescape=True))


trading_signals_table = sa.Table(
    "trading_signals",
    metadata,
    sa.Column("bar_timestamp", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("sector", sa.String(64), primary_key=True),
    sa.Column("pair_id", sa.String(40), primary_key=True),
    _strategy_column(primary_key=True),
    sa.Column("as_of_session", sa.String(10), nullable=False),
    sa.Column("spread", sa.Float),
    sa.Column("zscore", sa.Float),
    sa.Column("gru_probability", sa.Float),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("position_y", sa.Float),
    sa.Column("position_x", sa.Float),
    sa.Column("gross_fraction", sa.Float),
    sa.Column("correlation_drift", sa.Boolean),
    sa.Column("flags", sa.Text),
    sa.Column("run_id", sa.String(64)),
)

orders_table = sa.Table(
    "orders",
    metadata,
    sa.Column("client_order_id", sa.String(128), primary_key=True),
    sa.Column("submitted_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("broker", sa.String(32), nullable=False),
    _strategy_column(primary_key=False),
    sa.Column("pair_id", sa.String(40), nullable=False),
    sa.Column("leg", sa.String(8), nullable=False),
    sa.Column("symbol", sa.String(16), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", sa.Float, nullable=False),
    sa.Column("reference_price", sa.Float),
    sa.Column("fill_price", sa.Float),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("request", sa.Text),
)

#: the trading rule's state per (sector, pair, strategy): quant.rule.PairState, written by the signal job after each bar
pair_states_table = sa.Table(
    "pair_states",
    metadata,
    sa.Column("sector", sa.String(64), primary_key=True),
    sa.Column("pair_id", sa.String(40), primary_key=True),
    _strategy_column(primary_key=True),
    sa.Column("y", sa.String(16), nullable=False),
    sa.Column("x", sa.String(16), nullable=False),
    sa.Column("side", sa.Integer, nullable=False),
    sa.Column("weight_y", sa.Float, nullable=False),
    sa.Column("weight_x", sa.Float, nullable=False),
    sa.Column("shares_y", sa.Float),
    sa.Column("shares_x", sa.Float),
    sa.Column("entry_session", sa.String(10)),
    sa.Column("entry_ordinal", sa.Integer, nullable=False),
    sa.Column("entry_bar", sa.DateTime(timezone=False)),
    sa.Column("entry_z", sa.Float),
    sa.Column("sessions_held", sa.Integer, nullable=False),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("entry_terms", sa.Text),
    sa.Column("terms", sa.Text),
    sa.Column("last_bar", sa.DateTime(timezone=False)),
    sa.Column("as_of_session", sa.String(10)),
    sa.Column("run_id", sa.String(64)),
)

positions_table = sa.Table(
    "positions",
    metadata,
    sa.Column("broker", sa.String(32), primary_key=True),
    sa.Column("symbol", sa.String(16), primary_key=True),
    sa.Column("qty", sa.Float, nullable=False),
    sa.Column("avg_price", sa.Float),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


class StoreUnavailableError(PairsError, RuntimeError):
    """The market data store's URL is malformed or its database cannot be reached (password masked)."""


def _engine_for(url: str) -> Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            try:
                engine = _new_engine(url)
            except (sa.exc.ArgumentError, sa.exc.DBAPIError, ModuleNotFoundError, ValueError) as exc:
                raise StoreUnavailableError(
                    f"market data store {redact_url(url)}: {type(exc).__name__}: "
                    f"{redact_text(str(getattr(exc, 'orig', None) or exc), url)[:500]}"
                ) from None  # the chained original would print the URL with its password
            _ENGINES[url] = engine
        return engine


#: the tables that carry the strategy (all but ``orders`` with it in their key)
STRATEGY_TABLES = (trading_configs_table, trading_signals_table, orders_table, pair_states_table)


def _keyed_by_strategy(table: sa.Table) -> bool:
    return "strategy" in table.primary_key.columns


def migrate_strategy_column(engine: Engine) -> list[str]:
    """Bring a store created before the ``strategy`` column up to date, in place; the tables migrated.

    Each of :data:`STRATEGY_TABLES` without the column gets it (``TEXT NOT NULL DEFAULT 'garch_gru'``:
    every existing row is the primary strategy's) and, where the key is per sector/pair/session, its
    primary key rebuilt with the column — PostgreSQL: ``ALTER TABLE … ADD COLUMN``, the old primary key
    dropped and re-added; SQLite (which cannot change a primary key) rebuilds the table and copies its
    rows. All tables in one transaction, under an exclusive lock (a second process opening the store
    at the same time waits, then finds nothing to do); a store already migrated is left alone."""
    inspector = sa.inspect(engine)
    pending = [
        table
        for table in STRATEGY_TABLES
        if inspector.has_table(table.name) and "strategy" not in {c["name"] for c in inspector.get_columns(table.name)}
    ]
    if not pending:
        return []
    if engine.dialect.name == "sqlite":
        return _migrate_sqlite(engine, pending)
    return _migrate_postgres(engine, pending)


_ADD_STRATEGY = f"ADD COLUMN strategy TEXT NOT NULL DEFAULT '{PRIMARY_STRATEGY}'"


def _migrate_sqlite(engine: Engine, pending: Sequence[sa.Table]) -> list[str]:
    from sqlalchemy.schema import CreateTable

    done = []
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        isolation = dbapi.isolation_level
        dbapi.isolation_level = None  # the transaction below is ours: DDL included, all or nothing
        cursor = dbapi.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")  # the write lock first: a concurrent opener waits here
            for table in pending:
                columns = [row[1] for row in cursor.execute(f'PRAGMA table_info("{table.name}")').fetchall()]
                if "strategy" in columns:
                    continue  # migrated by another process meanwhile
                if not _keyed_by_strategy(table):
                    cursor.execute(f'ALTER TABLE "{table.name}" {_ADD_STRATEGY}')
                else:
                    old = f"{table.name}__before_strategy"
                    cursor.execute(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
                    cursor.execute(str(CreateTable(table).compile(dialect=engine.dialect)))
                    names = ", ".join(f'"{c}"' for c in columns)
                    cursor.execute(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{old}"')
                    cursor.execute(f'DROP TABLE "{old}"')
                done.append(table.name)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
            dbapi.isolation_level = isolation
    finally:
        raw.close()
    return done


def _migrate_postgres(engine: Engine, pending: Sequence[sa.Table]) -> list[str]:
    done = []
    with engine.begin() as conn:
        for table in pending:
            conn.execute(sa.text(f'LOCK TABLE "{table.name}" IN ACCESS EXCLUSIVE MODE'))
            exists = conn.execute(
                sa.text(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = :table AND column_name = 'strategy'"
                ),
                {"table": table.name},
            ).first()
            if exists:
                continue  # migrated by another process meanwhile
            conn.execute(sa.text(f'ALTER TABLE "{table.name}" {_ADD_STRATEGY}'))
            if _keyed_by_strategy(table):
                key = conn.execute(
                    sa.text(
                        "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass) AND contype = 'p'"
                    ),
                    {"table": table.name},
                ).scalar()
                if key is not None:
                    conn.execute(sa.text(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{key}"'))
                columns = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
                conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD PRIMARY KEY ({columns})'))
            done.append(table.name)
    return done


def _new_engine(url: str) -> Engine:
    """A fresh engine with the store's tables created (SQLite: folder made, WAL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: the stream and Dagster write concurrently
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        migrate_strategy_column(engine)  # a store made before the strategy column: migrated in place
        metadata.create_all(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _to_naive_utc(values: pd.Series) -> list:
    return [t.to_pydatetime() for t in pd.to_datetime(values, utc=True).dt.tz_localize(None)]


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


class MarketDataStore(dg.ConfigurableResource):
    """Bars and trading tables behind one SQLAlchemy URL."""

    database_url: str

    _engine: Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _engine_for(self.database_url)
        return self._engine

    @property
    def display_url(self) -> str:
        return redact_url(self.database_url)

    def _insert(self, table: sa.Table):
        return (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table)

    def _upsert(self, table: sa.Table, rows: Sequence[dict], conn) -> None:
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        )
        conn.execute(stmt, list(rows))

    # --- bars -----------------------------------------------------------------------------
    def upsert_bars(self, bars: pd.DataFrame, *, context: str) -> int:
        """Validate and upsert ``bars`` (the contract frame) in one transaction; return rows written."""
        bars = validate_bars(bars[BAR_COLUMNS], context=context)
        if bars.empty:
            return 0
        records = bars.assign(timestamp=_to_naive_utc(bars["timestamp"])).astype(object)
        records = records.where(pd.notna(records), None).to_dict("records")
        with self.engine.begin() as conn:
            for start in range(0, len(records), 5000):
                self._upsert(bars_table, records[start : start + 5000], conn)
        return len(records)

    def read_bars(
        self,
        symbols: Iterable[str],
        start: pd.Timestamp,
        end: pd.Timestamp,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Bars with ``start <= timestamp <= end`` (UTC) for ``symbols``, sorted by symbol, timestamp."""
        symbols = sorted(set(symbols))
        t = bars_table.c
        query = sa.select(*[t[c] for c in BAR_COLUMNS]).where(
            t.symbol.in_(symbols),
            t.timestamp >= to_naive_utc(start),
            t.timestamp <= to_naive_utc(end),
        )
        if source is not None:
            query = query.where(t.source == source)
        query = query.order_by(t.symbol, t.timestamp, t.source)
        with self.engine.connect() as conn:
            frame = pd.read_sql_query(query, conn)
        if frame.empty:
            return empty_bars()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
        sources = frame["source"].copy()
        out = conform_bars(frame, source="")
        out["source"] = sources.to_numpy()
        return out

    def bar_counts(self, source: str | None = None) -> pd.DataFrame:
        """Per (symbol, source): number of bars, first and last timestamp."""
        t = bars_table.c
        query = (
            sa.select(
                t.symbol,
                t.source,
                sa.func.count().label("bars"),
                sa.func.min(t.timestamp).label("first"),
                sa.func.max(t.timestamp).label("last"),
            )
            .group_by(t.symbol, t.source)
            .order_by(t.symbol, t.source)
        )
        if source is not None:
            query = query.where(t.source == source)
        with self.engine.connect() as conn:
            return pd.read_sql_query(query, conn)

    def latest_bar_timestamp(
        self, symbols: Iterable[str], source: str | None = None, *, live_source: str | None = None
    ) -> pd.Timestamp | None:
        """The latest bar's time of ``symbols`` (of ``source`` only; of ``live_source`` and its
        ``+proxy:`` stand-ins only), None without one."""
        t = bars_table.c
        query = sa.select(sa.func.max(t.timestamp)).where(t.symbol.in_(sorted(set(symbols))))
        if source is not None:
            query = query.where(t.source == source)
        if live_source is not None:
            query = query.where(of_source(t.source, live_source))
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else to_utc(value)

    # --- other tables ---------------------------------------------------------------------
    def upsert_rows(self, table: sa.Table, rows: Sequence[dict]) -> int:
        """Upsert plain dict rows into one of the store's tables in one transaction."""
        clean = [{k: _none_if_nan(v) for k, v in row.items()} for row in rows]
        with self.engine.begin() as conn:
            self._upsert(table, clean, conn)
        return len(clean)

    def upsert_tables(self, batches: Sequence[tuple[sa.Table, Sequence[dict]]]) -> int:
        """Upsert rows into several of the store's tables in ONE transaction (all or nothing)."""
        n = 0
        with self.engine.begin() as conn:
            for table, rows in batches:
                clean = [{k: _none_if_nan(v) for k, v in row.items()} for row in rows]
                self._upsert(table, clean, conn)
                n += len(clean)
        return n

    def read_table(self, table: sa.Table, where: sa.ColumnElement | None = None) -> pd.DataFrame:
        query = sa.select(table)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            return pd.read_sql_query(query, conn)

    def upsert_model_performance(self, rows: Sequence[dict]) -> int:
        """Upsert rows of the model_performance table (the gru_models stage's per-pair test metrics)."""
        return self.upsert_rows(model_performance_table, rows)

    def write_trading_config(self, document: dict, path: str, strategy: str = PRIMARY_STRATEGY) -> None:
        """Record ``document`` (a trading config's document) written to ``path`` as ``strategy``'s."""
        self.upsert_rows(
            trading_configs_table,
            [
                {
                    "as_of_session": document["as_of_session"],
                    "sector": document["sector"],
                    "strategy": strategy,
                    "effective_session": document["effective_session"],
                    "schema_version": document["schema_version"],
                    "n_pairs": len(document["pairs"]),
                    "input_fingerprint": document["input_fingerprint"],
                    "path": path,
                    "document": json.dumps(document, sort_keys=True),
                }
            ],
        )

    def latest_trading_config_record(
        self, sector: str, on_or_before: str | None = None, strategy: str = PRIMARY_STRATEGY
    ) -> StoredTradingConfig | None:
        """``strategy``'s latest trading config row of the sector (on or before ``on_or_before``) with its
        document as stored, unparsed: a truncated, empty or non-object document is the caller's to report
        (with the row's partition and file), not a bare ``JSONDecodeError``."""
        t = trading_configs_table.c
        query = sa.select(t.as_of_session, t.path, t.document).where(t.sector == sector, t.strategy == strategy)
        if on_or_before is not None:
            query = query.where(t.as_of_session <= on_or_before)
        query = query.order_by(t.as_of_session.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredTradingConfig(
            as_of_session=str(row.as_of_session),
            sector=sector,
            path=str(row.path),
            text=row.document or "",
            strategy=strategy,
        )

    def latest_trading_config(
        self, sector: str, on_or_before: str | None = None, strategy: str = PRIMARY_STRATEGY
    ) -> dict | None:
        """The document of :meth:`latest_trading_config_record`, parsed."""
        record = self.latest_trading_config_record(sector, on_or_before, strategy)
        return None if record is None else json.loads(record.text)
