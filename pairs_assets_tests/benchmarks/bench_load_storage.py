"""Benchmark: `pairs load-bars` on the SQLite and the PostgreSQL Dagster instance, and the UI's
raw_bars Checks tab (its GraphQL query) afterwards.

Run: ``python pairs_assets_tests/benchmarks/bench_load_storage.py [--storage sqlite postgres]
[--sectors 1] [--start 2017-10-02] [--end 2022-12-28] [--graphql]``. Prints a table; asserts nothing.

Each storage gets a fresh temporary PAIRS_HOME. SQLite: ``pairs init``'s dagster.yaml (the
project's instance). PostgreSQL: deploy/dagster.yaml with ``PAIRS_DAGSTER_DB_URL`` set to a new
database on 127.0.0.1:5432 (``PAIRS_TEST_POSTGRES_URL`` names the admin URL), dropped afterwards.
The load is ``pairs load-bars`` in a fresh process (its start included) — the default range is
``pairs demo``'s: 1,320 sessions before and through 2022-12-28. Then, in this process, the counts
the instance holds (materializations, check rows by status) and the *Checks* tab's query
(``AssetChecksQuery`` of the Dagster UI 1.13, with its fragments: each check's latest execution
and its partition statuses) run against the instance through dagster_graphql, the code location
loaded from workspace.yaml as the webserver does. ``--no-sqlite-batched-writes``: the SQLite
instance writes events with Dagster's own code (the comparison for issue 16, item 6);
``--dagster-check-state`` also times the Checks tab with Dagster's own check-state code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get("PAIRS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

# The Dagster UI 1.13's AssetChecksQuery (Checks tab of an asset), its fragments inlined; the
# metadata fragment is cut to the entry kinds the project's checks record.
CHECKS_TAB_QUERY = """
query AssetChecksQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      jobNames
      assetKey { path }
      repository { id name location { id name } }
      hasReportRunlessAssetEventPermission
      assetChecksOrError {
        ... on AssetCheckNeedsMigrationError { message }
        ... on AssetChecks {
          checks {
            name
            assetKey { path }
            description
            canExecuteIndividually
            blocking
            jobNames
            automationCondition { label expandedLabel }
            executionForLatestMaterialization {
              id runId status stepKey timestamp
              run { id status }
              evaluation {
                severity timestamp description partition
                targetMaterialization { timestamp runId }
                metadataEntries {
                  label description
                  ... on TextMetadataEntry { text }
                  ... on IntMetadataEntry { intValue intRepr }
                  ... on FloatMetadataEntry { floatValue }
                  ... on MarkdownMetadataEntry { mdStr }
                }
              }
            }
            partitionDefinition {
              name description
              dimensionTypes { type dynamicPartitionsDefinitionName }
            }
            partitionStatuses {
              ... on AssetCheckDefaultPartitionStatuses {
                succeededPartitions failedPartitions inProgressPartitions skippedPartitions executionFailedPartitions
              }
              ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
              ... on AssetCheckMultiPartitionStatuses {
                primaryDimensionName
                ranges {
                  primaryDimStartKey primaryDimEndKey
                  secondaryDim {
                    ... on AssetCheckDefaultPartitionStatuses {
                      succeededPartitions failedPartitions inProgressPartitions skippedPartitions executionFailedPartitions
                    }
                    ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""


def checks_tab(instance, sessions_between) -> tuple[float, dict]:
    """(seconds, {check: {status: partitions}}) of the Checks tab's query for raw_bars."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    with define_out_of_process_context(str(ROOT / "workspace.yaml"), None, instance) as context:
        profile = None
        if os.environ.get("PAIRS_BENCH_PROFILE"):  # where the query's time goes
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        t0 = time.perf_counter()
        result = execute_dagster_graphql(context, CHECKS_TAB_QUERY, variables={"assetKey": {"path": ["raw_bars"]}})
        seconds = time.perf_counter() - t0
        if profile is not None:
            import pstats

            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    if result.errors:
        raise RuntimeError(f"GraphQL errors: {result.errors}")
    checks = result.data["assetNodeOrError"]["assetChecksOrError"]["checks"]
    out = {}
    for check in checks:
        counts: dict[str, int] = {}
        for rng in (check.get("partitionStatuses") or {}).get("ranges", []):
            days = sessions_between(rng["primaryDimStartKey"], rng["primaryDimEndKey"])
            for field, keys in rng["secondaryDim"].items():
                if keys:
                    counts[field.replace("Partitions", "")] = (
                        counts.get(field.replace("Partitions", ""), 0) + len(keys) * days
                    )
        latest = check.get("executionForLatestMaterialization")
        counts["latest"] = latest["status"] if latest else None
        out[check["name"]] = counts
    return seconds, out


def instance_counts(instance) -> dict[str, int]:
    """Materializations, planned materializations, check rows by status, planned check rows' bytes."""
    import dagster as dg
    import sqlalchemy as sa
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable as checks_t
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as events

    storage = instance.event_log_storage
    out: dict[str, int] = {}
    with storage.index_connection() as conn:
        for kind, n in conn.execute(
            sa.select(events.c.dagster_event_type, sa.func.count())
            .where(
                events.c.dagster_event_type.in_(
                    [
                        dg.DagsterEventType.ASSET_MATERIALIZATION.value,
                        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
                        dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
                        dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
                    ]
                )
            )
            .group_by(events.c.dagster_event_type)
        ):
            out[kind] = n
        for status, n, size in conn.execute(
            sa.select(
                checks_t.c.execution_status, sa.func.count(), sa.func.max(sa.func.length(checks_t.c.evaluation_event))
            ).group_by(checks_t.c.execution_status)
        ):
            out[f"check rows {status}"] = n
            out[f"max row bytes {status}"] = size or 0
    return out


def run_storage(storage: str, args) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"pairs_bench_load_{storage}_"))
    env = dict(os.environ, PAIRS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), PYTHONPATH=str(ROOT))
    env.pop("MLFLOW_TRACKING_URI", None)
    db_name = None
    admin = None
    try:
        if storage == "postgres":
            import sqlalchemy as sa

            admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            db_name = f"pairs_bench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'create database "{db_name}"'))
            env["PAIRS_DAGSTER_DB_URL"] = ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
            (home / "dagster").mkdir(parents=True)
            text = (ROOT / "deploy" / "dagster.yaml").read_text()
            if args.range_checks != "batched":  # the event log's range_checks setting (issue 20)
                old = "  class: PairsPostgresEventLogStorage\n  config: *postgres\n"
                assert old in text, "deploy/dagster.yaml's event_log_storage changed"
                text = text.replace(
                    old,
                    "  class: PairsPostgresEventLogStorage\n  config:\n    postgres_url:\n      env: PAIRS_DAGSTER_DB_URL\n"
                    f"    range_checks: {args.range_checks}\n",
                )
            (home / "dagster" / "dagster.yaml").write_text(text)
        elif not args.sqlite_batched_writes:
            # the project's instance with Dagster's own SQLite writes (issue 16 item 6: with / without)
            (home / "dagster").mkdir(parents=True)
            text = (ROOT / "dagster.yaml").read_text() + (
                "event_log_storage:\n  module: pairs_assets.instance.sqlite\n  class: PairsSqliteEventLogStorage\n"
                f"  config:\n    base_dir: {home / 'dagster' / 'history' / 'runs'}/\n    batched_writes: false\n"
            )
            (home / "dagster" / "dagster.yaml").write_text(text)
        cmd = [str(Path(sys.executable).parent / "pairs"), "load-bars", "--start", args.start, "--end", args.end]
        for sector in args.sector_names:
            cmd += ["--sector", sector]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        load_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{storage}: load failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        row = {"storage": storage, "load_s": load_s, "last_line": proc.stdout.strip().splitlines()[-1]}
        os.environ.update({k: env[k] for k in ("PAIRS_HOME", "DAGSTER_HOME")})
        if "PAIRS_DAGSTER_DB_URL" in env:
            os.environ["PAIRS_DAGSTER_DB_URL"] = env["PAIRS_DAGSTER_DB_URL"]
        import dagster as dg

        from pairs_assets import partitions

        def between(a: str, b: str) -> int:
            return len(partitions.sessions_in_range(a, b))

        instance = dg.DagsterInstance.from_config(str(home / "dagster"))
        try:
            row["counts"] = instance_counts(instance)
            (record,) = instance.get_run_records(limit=1)
            # creating the run (its planned events) until RUN_START: what run monitoring's start timeout sees
            row["run_creation_s"] = record.start_time - record.create_timestamp.timestamp()
            row["run_s"] = record.end_time - record.create_timestamp.timestamp()
            if args.graphql:
                for attempt in ("cold", "warm"):
                    seconds, statuses = checks_tab(instance, between)
                    row[f"checks_tab_{attempt}_s"] = seconds
                row["statuses"] = statuses
                if args.dagster_check_state:
                    # the same query with Dagster's own check-state code (the webserver side of the
                    # query runs in this process): what the UI cost before BulkCheckState
                    from dagster._core.storage.event_log.base import EventLogStorage

                    from pairs_assets.instance.event_log import BulkCheckState

                    mine = BulkCheckState.get_asset_check_state
                    BulkCheckState.get_asset_check_state = EventLogStorage.get_asset_check_state
                    try:
                        seconds, dagster_statuses = checks_tab(instance, between)
                    finally:
                        BulkCheckState.get_asset_check_state = mine
                    row["checks_tab_dagster_state_s"] = seconds
                    row["same_statuses"] = dagster_statuses == statuses
        finally:
            instance.dispose()
        return row
    finally:
        if db_name is not None:
            import sqlalchemy as sa

            with admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{db_name}" with (force)'))
            admin.dispose()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--sectors", type=int, default=1, help="how many sectors (sorted), 1 to 6")
    parser.add_argument("--start", default="2017-10-02")
    parser.add_argument("--end", default="2022-12-28")
    parser.add_argument("--graphql", action="store_true", help="also time the raw_bars Checks tab query")
    parser.add_argument(
        "--no-sqlite-batched-writes",
        dest="sqlite_batched_writes",
        action="store_false",
        help="SQLite: Dagster's own event writes (PairsSqliteEventLogStorage batched_writes: false)",
    )
    parser.add_argument(
        "--range-checks",
        default="batched",
        choices=["batched", "yielded"],
        help="PostgreSQL: how a range run records its check results (the event log's range_checks)",
    )
    parser.add_argument(
        "--dagster-check-state",
        action="store_true",
        help="also time the query with Dagster's own check-state code (before BulkCheckState)",
    )
    args = parser.parse_args()
    sectors = ["consumer", "energy", "financial", "healthcare", "industrial", "technology"]
    args.sector_names = sectors[: args.sectors] if args.sectors < len(sectors) else []
    rows = [run_storage(s, args) for s in args.storage]
    print()
    print(
        f"pairs load-bars {args.start}...{args.end} × {args.sectors} sector(s); "
        f"SQLite batched writes: {args.sqlite_batched_writes}; PostgreSQL range_checks: {args.range_checks}; "
        f"DAGSTER_EVENT_BATCH_SIZE={os.environ.get('DAGSTER_EVENT_BATCH_SIZE', 'unset')}"
    )
    print("| storage | load (s) | checks tab cold (s) | checks tab warm (s) | checks tab, Dagster's check state (s) |")
    print("|---|---|---|---|---|")
    nan = float("nan")
    for r in rows:
        print(
            f"| {r['storage']} | {r['load_s']:.1f} | {r.get('checks_tab_cold_s', nan):.1f} | "
            f"{r.get('checks_tab_warm_s', nan):.1f} | {r.get('checks_tab_dagster_state_s', nan):.1f}"
            + ("" if "same_statuses" not in r else f" (same statuses: {r['same_statuses']})")
            + " |"
        )
    for r in rows:
        print(
            f"\n{r['storage']}: {r['last_line']}; run created in {r['run_creation_s']:.1f}s "
            f"(until RUN_START), run {r['run_s']:.1f}s from creation to end"
        )
        for k, v in sorted(r["counts"].items()):
            print(f"  {k}: {v:,}")
        for name, counts in sorted(r.get("statuses", {}).items()):
            print(f"  check {name}: {counts}")


if __name__ == "__main__":
    main()
