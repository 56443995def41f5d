"""The ``pairs`` command: set up the local home, run the demo, load bars, start the UI, live tools."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path

import click
import dagster as dg

# The CLI's own output is the summary a person reads; Dagster's beta/preview notices about APIs we
# chose deliberately (multi-partition mappings, single-run backfill policy) would bury it.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message="Asset job .* materializes assets with varying BackfillPolicies")

from pairs_assets.cli_common import DATE, SESSION, is_debug, pairs_group
from pairs_assets.errors import MissingBarsError, PairsError, RunFailedError
from pairs_assets.settings import EMBEDDED_LAST_SESSION, PACKAGE_DIR, PRESETS, paths

PROJECT_DAGSTER_YAML = PACKAGE_DIR.parent / "dagster.yaml"
PROJECT_WORKSPACE = PACKAGE_DIR.parent / "workspace.yaml"


def init_home(dagster_home: Path | None = None) -> Path:
    """Create ``PAIRS_HOME`` and ``DAGSTER_HOME`` (with the project's dagster.yaml); export DAGSTER_HOME.

    ``dagster_home`` defaults to the exported ``DAGSTER_HOME`` (else ``<PAIRS_HOME>/dagster``).
    """
    p = paths()
    p.home.mkdir(parents=True, exist_ok=True)
    dagster_home = Path(dagster_home) if dagster_home is not None else p.dagster_home
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if PROJECT_DAGSTER_YAML.exists() and not target.exists():
        shutil.copyfile(PROJECT_DAGSTER_YAML, target)
    elif not target.exists():
        target.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


@pairs_group()
def main(debug: bool) -> None:
    """pairs_assets: daily pairs-trading configs from price bars, with Dagster.

    An error prints one line (exit status 2); `pairs --debug COMMAND` adds the traceback.
    """
    # every command (and any `dagster` call it makes) uses the local instance the UI shows, never a
    # throwaway one; the directory itself is created by the commands that open the instance
    os.environ.setdefault("DAGSTER_HOME", str(paths().dagster_home))


@main.command()
def init() -> None:
    """Create the local home (PAIRS_HOME) and the Dagster instance; print the exports to use.

    The instance is always the home's own, ``<PAIRS_HOME>/dagster``: a ``DAGSTER_HOME`` exported for
    another home (a second ``pairs init`` in the same shell) is named and replaced, so the new home's
    runs do not land in the first home's instance.
    """
    p = paths()
    exported = os.environ.get("DAGSTER_HOME")
    dagster_home = init_home(p.home / "dagster")
    click.echo(f"PAIRS_HOME={p.home}")
    if exported and Path(exported).resolve() != dagster_home.resolve():
        click.echo(f"note: DAGSTER_HOME was {exported} (not this home's instance); export the line below")
    click.echo(f"export DAGSTER_HOME={dagster_home}")
    from pairs_assets.util import redact_url

    click.echo(f"market data store: {redact_url(p.database_url)}")


def _quiet() -> dict:
    """Run config of the CLI's runs: Dagster's console logger prints nothing (the command prints a
    summary, and a failed step as one line) unless ``--debug``: then warnings and tracebacks too."""
    return {"loggers": {"console": {"config": {"log_level": "WARNING" if is_debug() else "CRITICAL"}}}}


def step_failure(result) -> str:
    """``"<step>: <ErrorClass>: <message>"`` of a failed run's first failed step (its innermost error)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            # the innermost error says what is wrong; a worker process's traceback (attached by
            # concurrent.futures as the cause of the re-raised error) is not an error of its own
            while error.cause is not None and error.cause.cls_name != "_RemoteTraceback":
                error = error.cause
            lines = [line.strip() for line in error.message.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else error.cls_name
            # "pairs_assets.errors.BarsFileError: bars file …" → "BarsFileError: bars file …"
            head, sep, rest = message.partition(": ")
            if sep and head.rsplit(".", 1)[-1] == error.cls_name:
                message = f"{error.cls_name}: {rest}"
            return f"{event.step_key}: {message}"
    for event in result.all_events:
        if event.event_type_value == "RUN_FAILURE" and event.message:
            return event.message.strip().splitlines()[0]
    return "the run failed (see it in the Dagster UI: pairs dev)"


def data_last_session():
    """The last session of the configured bar source's data (None when the source cannot say)."""
    from pairs_assets.definitions import bar_source_for

    return bar_source_for(paths()).last_session()


def check_sectors(sectors, param_hint: str = "--sector") -> list[str]:
    """The chosen sectors (all when none), refusing unknown ones by name."""
    from pairs_assets.universe import load_universe

    all_sectors = sorted(load_universe(paths().universe_file).sector_names)
    chosen = sorted(sectors) if sectors else all_sectors
    unknown = sorted(set(chosen) - set(all_sectors))
    if unknown:
        raise click.BadParameter(
            f"unknown sector(s) {', '.join(unknown)} (known: {', '.join(all_sectors)})", param_hint=param_hint
        )
    return chosen


def _relax_dagster_sqlite_fsync() -> None:
    """Skip the fsync after each event-log commit of the local SQLite instance, in this process only.

    A single-run backfill of 1,300 sessions × 6 sectors records 7,800 materializations; with an
    fsync per event that alone took ~170 s here, ~70 s without. A power cut can lose the last
    events of the run (not the bars: the market data store keeps its own settings). Set
    PAIRS_SQLITE_FSYNC=1 to keep SQLite's default.
    """
    home_paths = paths()
    if home_paths.sqlite_fsync:
        return
    import sqlite3

    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    dagster_home = str(home_paths.dagster_home)

    @sa.event.listens_for(Engine, "connect")
    def _no_fsync(dbapi_conn, _record):
        if isinstance(dbapi_conn, sqlite3.Connection):
            files = [row[2] for row in dbapi_conn.execute("PRAGMA database_list")]
            if any(f and f.startswith(dagster_home) for f in files):
                dbapi_conn.execute("PRAGMA synchronous=OFF")


def _instance():
    import dagster as dg

    from pairs_assets.instance.run_recovery import fail_dead_runs

    init_home()
    _relax_dagster_sqlite_fsync()
    instance = dg.DagsterInstance.get()
    # a run whose process was killed (kill -9) would stay STARTED forever: mark it failed, say so
    for dead in fail_dead_runs(instance):
        click.echo(f"note: {dead.describe()}; rerun it (a load records what the store already holds)", err=True)
    return instance


def preflight_range(start: str, end: str, sectors: list[str]) -> None:
    """Check the source covers every session × symbol of the range before a run is started.

    A single-run load that fails marks every partition of its range failed in the UI; a gap found
    here raises ``MissingBarsError`` naming the session and symbol, with no run and nothing
    written. File and embedded sources are parsed once per process, so the run reuses this read;
    Alpaca is not read twice (the run itself validates the whole range before its one write).
    """
    from pairs_assets.assets.raw_bars import validate_range
    from pairs_assets.definitions import bar_source_for
    from pairs_assets.partitions import sessions_in_range
    from pairs_assets.universe import load_universe

    p = paths()
    if p.bar_source_kind == "alpaca":
        return
    sessions = list(sessions_in_range(start, end))
    try:
        validate_range(bar_source_for(p), {sector: sessions for sector in sectors}, load_universe(p.universe_file))
    except MissingBarsError as exc:
        raise MissingBarsError(f"raw_bars {start}...{end} not started, nothing written: {exc}") from exc


def load_bars_range(start: str, end: str, sectors: list[str] | None = None) -> tuple[bool, float]:
    """Materialize raw_bars for [start, end] × sectors in one run (single-run backfill).

    ``start`` and ``end`` must be sessions (``pairs load-bars`` clips to them). Returns (True,
    seconds); a failed run raises ``RunFailedError`` naming the step and its innermost error.
    """
    import dagster as dg

    from pairs_assets.definitions import defs
    from pairs_assets.instance.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    all_sectors = check_sectors([])
    chosen = check_sectors(sectors)
    # a partition range is a rectangle: the sectors must be a contiguous run of the sorted sectors
    if chosen != all_sectors[all_sectors.index(chosen[0]) : all_sectors.index(chosen[-1]) + 1]:
        raise click.BadParameter("give one sector, all sectors, or a contiguous range of sectors")
    t0 = time.perf_counter()
    preflight_range(start, end, chosen)
    from pairs_assets.checks import RAW_BARS_CHECKS
    from pairs_assets.instance.progress import RunProgress
    from pairs_assets.partitions import sessions_in_range

    job = defs.resolve_implicit_global_asset_job_def()
    instance, run_id = _instance(), str(uuid.uuid4())  # a run id as Dagster makes one (make_new_run_id)
    total = len(sessions_in_range(start, end)) * len(chosen)
    progress = RunProgress(
        instance,
        run_id,
        total,
        f"  raw_bars {start}...{end}",
        checks_total=total * len(RAW_BARS_CHECKS),
        write=lambda text: click.echo(text, nl=False),
    )
    with progress:
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            asset_selection=[dg.AssetKey("raw_bars")],
            run_config=_quiet(),
            tags={
                ASSET_PARTITION_RANGE_START_TAG: f"{start}|{chosen[0]}",
                ASSET_PARTITION_RANGE_END_TAG: f"{end}|{chosen[-1]}",
            },
            raise_on_error=False,
        )
    if not result.success:
        raise RunFailedError(f"raw_bars {start}...{end} failed (run {result.run_id}): {step_failure(result)}")
    return result.success, time.perf_counter() - t0


def session_range(start: str, end: str, echo=click.echo) -> tuple[str, str]:
    """[start, end] clipped to its first and last NYSE session and to the data's last session (the
    daily partitions' last date), saying so; a range wholly past the data is refused, naming it."""
    from pairs_assets.partitions import non_session_description, sessions_in_range

    if start > end:
        raise click.BadParameter(f"{start} is after --end {end}", param_hint="--start")
    first = paths().history_start
    if start < first:
        raise click.BadParameter(
            f"{start} precedes the first partition {first} (PAIRS_HISTORY_START)", param_hint="--start"
        )
    sessions = sessions_in_range(start, end)
    if len(sessions) == 0:
        raise click.BadParameter(
            f"no NYSE session between {start} and {end}: {non_session_description(start)}", param_hint="--start/--end"
        )
    last_data = data_last_session()
    past_data = last_data is not None and sessions[-1] > last_data
    if past_data:
        if sessions[0] > last_data:
            raise click.BadParameter(
                f"{start} is after the last bar: the data ends on {last_data.date()}", param_hint="--start"
            )
        sessions = sessions[sessions <= last_data]
    first_session, last_session = str(sessions[0].date()), str(sessions[-1].date())
    if past_data:
        echo(
            f"sessions {first_session}...{last_session} (the data ends on {last_data.date()}, the last partition; "
            f"{start}...{end} asked)"
        )
    elif (first_session, last_session) != (start, end):
        echo(
            f"sessions {first_session}...{last_session} (the range's first and last NYSE sessions; {start}...{end} asked)"
        )
    return first_session, last_session


@main.command("load-bars")
@click.option("--start", required=True, type=DATE, help="First session, YYYY-MM-DD (a non-session moves to the next).")
@click.option(
    "--end",
    required=True,
    type=DATE,
    help="Last session, YYYY-MM-DD (a non-session moves to the previous; past the data, the data's last session).",
)
@click.option("--sector", "sectors", multiple=True, help="Sector(s); default all.")
def load_bars(start: str, end: str, sectors: tuple[str, ...]) -> None:
    """Backfill raw_bars for a range of sessions in one run (one pass over the source)."""
    check_sectors(sectors)
    start, end = session_range(start, end)
    ok, seconds = load_bars_range(start, end, list(sectors) or None)
    click.echo(f"raw_bars {start}...{end}: {'ok' if ok else 'FAILED'} in {seconds:.1f}s")


def run_daily(as_of: str, sectors: list[str]) -> list[dict]:
    """Execute the daily_pairs job for ``as_of`` × each sector on the local instance."""
    from pairs_assets.definitions import defs, home_resource_for
    from pairs_assets.partitions import partition_key

    instance = _instance()
    job = defs.resolve_job_def("daily_pairs")
    rows = []
    started = time.perf_counter()
    for done, sector in enumerate(sectors, start=1):
        t0 = time.perf_counter()
        result = job.execute_in_process(
            partition_key=partition_key(as_of, sector), instance=instance, raise_on_error=False, run_config=_quiet()
        )
        path = home_resource_for(paths()).trading_config_path(as_of, sector)
        n_pairs = len(json.loads(path.read_text())["pairs"]) if result.success and path.exists() else None
        failure = "" if result.success else step_failure(result)
        rows.append(
            {
                "sector": sector,
                "ok": result.success,
                "pairs": n_pairs,
                "seconds": time.perf_counter() - t0,
                "config": str(path) if result.success else failure,
                "run_id": result.run_id,
            }
        )
        elapsed = time.perf_counter() - started
        left = elapsed / done * (len(sectors) - done)
        click.echo(
            f"  [{done}/{len(sectors)}] {sector} {'ok' if result.success else 'FAILED'} in {rows[-1]['seconds']:.1f}s"
            f" ({elapsed:.0f}s elapsed, {elapsed / done:.1f}s per sector" + (f", ~{left:.0f}s left)" if left else ")")
        )
    return rows


@main.command()
@click.option(
    "--as-of", default=EMBEDDED_LAST_SESSION, show_default=True, type=SESSION, help="As-of session (partition date)."
)
@click.option("--sector", "sectors", multiple=True, help="Sector(s); default all sectors of the universe.")
@click.option("--skip-load", is_flag=True, help="Assume raw_bars for the history window are already loaded.")
def demo(as_of: str, sectors: tuple[str, ...], skip_load: bool) -> None:
    """Load the bars the graph needs, run daily_pairs for AS_OF × every sector, print a summary."""
    from pairs_assets.partitions import window_sessions
    from pairs_assets.settings import DEFAULT_STRATEGY

    init_home()
    p = paths()
    check_sectors(sectors)  # unknown sectors are refused by name, with --skip-load too
    chosen = list(sectors) or check_sectors([])
    window = window_sessions(as_of, DEFAULT_STRATEGY.history_sessions, history_start=paths().history_start)
    if not skip_load:
        last_data = data_last_session()
        if last_data is not None and as_of > str(last_data.date()):
            raise click.BadParameter(
                f"{as_of} is past the data: the data ends on {last_data.date()}", param_hint="--as-of"
            )
    click.echo(f"PAIRS_HOME      {p.home}")
    click.echo(f"DAGSTER_HOME    {p.dagster_home}")
    click.echo(f"bars source     {p.bars_file or 'embedded dataset (skfolio S&P 500 closes)'}")
    click.echo(f"as-of session   {as_of}  (config for the next session)")
    if not skip_load:
        start, end = str(window[0].date()), str(window[-1].date())
        click.echo(f"loading raw_bars {start}...{end} ({len(window)} sessions × {len(chosen)} sectors) in one run …")
        ok, seconds = load_bars_range(start, end, chosen)  # a failed run raises, naming the error
        click.echo(f"  done in {seconds:.1f}s")
    click.echo(f"running daily_pairs for {as_of} × {', '.join(chosen)} …")
    rows = run_daily(as_of, chosen)
    click.echo("")
    click.echo(f"{'sector':<12} {'status':<7} {'pairs':>5} {'secs':>6}  trading config")
    for row in rows:
        status = "ok" if row["ok"] else "FAILED"
        pairs = "-" if row["pairs"] is None else str(row["pairs"])
        click.echo(f"{row['sector']:<12} {status:<7} {pairs:>5} {row['seconds']:>6.1f}  {row['config']}")
    click.echo("")
    click.echo("Browse lineage and materializations:  pairs dev   (then open http://127.0.0.1:3000)")
    if not all(r["ok"] for r in rows):
        sys.exit(1)


@main.command()
@click.option("--port", default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
def dev(port: int, host: str) -> None:
    """Start the Dagster UI and daemon (``dagster dev``) on the local instance."""
    _instance().dispose()  # creates the home; marks runs whose process was killed as failed, saying so
    exe = Path(sys.executable).with_name("dagster")
    cmd = [str(exe) if exe.exists() else "dagster", "dev", "-w", str(PROJECT_WORKSPACE), "-h", host, "-p", str(port)]
    click.echo(" ".join(cmd))
    from pairs_assets.servers import run_server

    # SIGTERM/SIGINT reach dagster dev's whole process group (UI, daemon, code servers): nothing stays bound
    raise SystemExit(run_server(cmd, env=os.environ.copy()))


@main.command("launch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("launch_args", nargs=-1, type=click.UNPROCESSED)
def launch(launch_args: tuple[str, ...]) -> None:
    """``dagster job launch`` on the project's workspace, printing the run's id (Dagster's prints none).

    Every argument goes to ``dagster job launch`` (``-j``/``--job``, ``--config-json``, ``--tags``, …);
    the run id is chosen here (``--run-id``, unless given) and the run is looked up in the instance
    afterwards, e.g. ``pairs launch -j signal_job --tags '{"dagster/partition": "2022-12-28|consumer"}'``.
    """
    import subprocess
    import uuid

    args = list(launch_args)
    run_id = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--run-id"), None)
    run_id = run_id or next((a.split("=", 1)[1] for a in args if a.startswith("--run-id=")), None)
    if run_id is None:
        run_id = str(uuid.uuid4())
        args += ["--run-id", run_id]
    if not any(a in ("-w", "--workspace") or a.startswith("--workspace=") for a in args):
        args = ["-w", str(PROJECT_WORKSPACE), *args]
    instance = _instance()  # the home and DAGSTER_HOME the launched command uses too
    exe = Path(sys.executable).with_name("dagster")
    status = subprocess.call([str(exe) if exe.exists() else "dagster", "job", "launch", *args], env=os.environ.copy())
    if status != 0:
        raise SystemExit(status)
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise RunFailedError(
            f"dagster job launch exited 0 but no run {run_id} is in the instance {os.environ.get('DAGSTER_HOME')}"
        )
    click.echo(
        f"run {run_id} {run.status.value} (job {run.job_name}"
        + (f", partition {run.tags['dagster/partition']}" if "dagster/partition" in run.tags else "")
        + f"); follow it: dagster run list --limit 5, or the UI at /runs/{run_id}"
    )


@main.command("code-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", default=4000, show_default=True)
def code_server(host: str, port: int) -> None:
    """Serve the code location over gRPC (``dagster code-server start -m pairs_assets.definitions``).

    Refuses a port something already serves: gRPC binds with SO_REUSEPORT, so a second
    ``dagster code-server start`` on it would serve beside the first (two code versions, one location).
    """
    from pairs_assets.servers import refuse_served_port, run_server

    refuse_served_port(host, port, "code server")
    exe = Path(sys.executable).with_name("dagster")
    cmd = [
        str(exe) if exe.exists() else "dagster",
        "code-server",
        "start",
        "-m",
        "pairs_assets.definitions",
        "--location-name",
        "pairs_assets",
        "-h",
        host,
        "-p",
        str(port),
    ]
    click.echo(" ".join(cmd))
    raise SystemExit(run_server(cmd, env=os.environ.copy()))


@main.command()
@click.option("--queue", "-q", "queues", multiple=True, help="Queue(s) to consume; default: dagster (every step).")
@click.option("--concurrency", "-c", type=int, default=None, help="Steps at once; default: the CPU count.")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="prefork: one child process per concurrent step.",
)
@click.option("--name", "-n", default=None, help="Worker name; default pairs-<pid>@<host>.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(queues: tuple[str, ...], concurrency: int | None, pool: str, name: str | None, loglevel: str) -> None:
    """Start a Celery worker that executes daily_pairs steps (PAIRS_EXECUTOR=celery).

    Broker from PAIRS_CELERY_BROKER, results from PAIRS_CELERY_BACKEND (default rpc://). Start one
    per machine (more for more throughput); each needs the code server's environment.
    """
    from pairs_assets.instance.worker import make_worker_app
    from pairs_assets.jobs import CELERY_QUEUE
    from pairs_assets.util import redact_url

    p = paths()
    if not p.celery_broker:
        raise click.UsageError("set PAIRS_CELERY_BROKER (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    queues = queues or (CELERY_QUEUE,)
    name = name or f"pairs-{os.getpid()}@%h"
    click.echo(f"worker {name}: broker {redact_url(p.celery_broker)}, queues {', '.join(queues)}, pool {pool}")
    argv = ["worker", f"--loglevel={loglevel}", "-Q", ",".join(queues), "-n", name, f"--pool={pool}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    make_worker_app(p.celery_broker, p.celery_backend).worker_main(argv)


@main.command("mlflow-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=None, type=int, help="Server worker processes (MLflow's default if unset).")
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers MLflow accepts (its default: localhost and private IPs), e.g. mlflow,mlflow:5000.",
)
def mlflow_server(host: str, port: int, workers: int | None, allowed_hosts: str | None) -> None:
    """Start an MLflow tracking server on PostgreSQL with an explicit artifact root.

    Backend store from PAIRS_MLFLOW_BACKEND_URI (e.g. postgresql://mlflow:…@127.0.0.1:5432/mlflow),
    artifacts under PAIRS_MLFLOW_ARTIFACTS (a shared path or URL such as s3://bucket/mlflow),
    served through the server (clients use MLFLOW_TRACKING_URI=http://HOST:PORT).
    """
    from pairs_assets.util import redact_url

    backend = os.environ.get("PAIRS_MLFLOW_BACKEND_URI", "")
    artifacts = paths().mlflow_artifacts
    if not backend:
        raise click.UsageError("set PAIRS_MLFLOW_BACKEND_URI (the PostgreSQL URL of MLflow's backend store)")
    if not artifacts:
        raise click.UsageError("set PAIRS_MLFLOW_ARTIFACTS (a path or URL for run and model artifacts)")
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(exe) if exe.exists() else "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts,
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    # the backend URL travels in the environment, not argv: `ps` would show its password
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend}
    click.echo(" ".join(cmd) + f"   (backend store {redact_url(backend)})")
    from pairs_assets.servers import run_server

    # SIGTERM/SIGINT reach the server and its workers: the port is released
    raise SystemExit(run_server(cmd, env=env))


def _load_walk_forward_bars(settings, strategy, resources) -> tuple[int, float]:
    """Upsert the walk-forward's bars (range + longest window before it) from the source into the store."""
    from pairs_assets.assets.raw_bars import load_sector_bars
    from pairs_assets.assets.walk_forward import panel_sessions, resolve_sectors
    from pairs_assets.universe import load_universe

    t0 = time.perf_counter()
    sessions = list(panel_sessions(settings, strategy, paths().history_start))
    written = 0
    for sector, symbols in resolve_sectors(settings, load_universe(paths().universe_file)).items():
        bars = load_sector_bars(resources.bar_source, sector, symbols, sessions)
        written += resources.store.upsert_bars(bars, context=f"walk-forward bars {sector}")
    return written, time.perf_counter() - t0


def _interval(value, low, high) -> str:
    if value != value:
        return "nan"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]" if low == low else f"{value:+.2f}"


def print_walk_forward_summary(summary, echo=click.echo, min_trades: int = 10) -> None:
    """The totals (every cost and period) and each sector at the full range, default beside baseline.

    Sharpe and the difference to the baseline on the same days with their 95% block-bootstrap
    intervals; ``psr`` the probability the Sharpe exceeds 0, ``dsr`` the deflated Sharpe (periods
    overlapping the selection range); below ``min_trades`` trades Sharpe, t and DSR print "–" with
    the count.
    """
    header = (
        f"{'strategy':<9} {'sector':<11} {'cost':>4} {'period':<9} {'sharpe [95% CI]':>22} {'vs baseline [95% CI]':>22} "
        + " ".join(f"{c:>8}" for c in ["ann_ret", "ann_vol", "max_dd", "trades", "hit", "t_stat", "psr", "dsr"])
    )
    totals = summary[summary["sector"] == "all"]
    sectors = summary[(summary["sector"] != "all") & (summary["period"] == "full")]

    def number(v) -> str:
        return f"{'nan':>8}" if v != v else f"{v:>8.3f}"

    for title, frame in (("total (all sectors)", totals), ("per sector, full range", sectors)):
        echo("")
        echo(title)
        echo(header)
        for row in frame.itertuples():
            few = int(row.trades) < min_trades
            dash = f"– (n={int(row.trades)})"
            sharpe = dash if few else _interval(row.sharpe, row.sharpe_low, row.sharpe_high)
            versus = (
                ""
                if row.vs_baseline != row.vs_baseline
                else "–"
                if few
                else _interval(row.vs_baseline, row.vs_baseline_low, row.vs_baseline_high)
            )
            dsr = (
                f"{'':>8}"
                if row.deflated_sharpe != row.deflated_sharpe
                else f"{'–':>8}"
                if few
                else number(row.deflated_sharpe)
            )
            values = [
                number(row.ann_return),
                number(row.ann_vol),
                number(row.max_drawdown),
                f"{int(row.trades):>8d}",
                number(row.hit_rate),
                f"{'–':>8}" if few else number(row.t_stat),
                f"{'–':>8}" if few else number(row.psr),
                dsr,
            ]
            echo(
                f"{row.strategy:<9} {row.sector:<11} {row.cost_bp:>4g} {row.period:<9} {sharpe:>22} {versus:>22} "
                + " ".join(values)
            )
    used = summary.dropna(subset=["n_trials"])
    if len(used):
        first = used.iloc[0]
        how = {"ledger": "counted by the trials ledger", "override": "given by --trials", "none": "no trial recorded"}
        spread = "; ".join(
            f"{c:g} bp: sd of the trials' Sharpes {sd:.2f}"
            for c, sd in used[used["sector"] == "all"].groupby("cost_bp")["trial_sharpe_sd"].first().items()
            if sd == sd
        )
        echo("")
        echo(
            f"dsr: deflated Sharpe on the periods overlapping the selection range, N = {int(first.n_trials)} ({how.get(first.trials_source, first.trials_source)})"
            + (f"; {spread}" if spread else "; V = the estimator's own variance (fewer than two trials recorded)")
        )
    echo(
        f"psr: probability the true Sharpe exceeds 0; intervals: 95% circular block bootstrap; vs baseline: same days, "
        f"paired; '–': fewer than {min_trades} trades (n = the count)"
    )


def parse_periods(text: str) -> list[tuple[str, str, str]]:
    """``"1995-2005,2006-2015"`` → [("1995-2005", "1995-01-01", "2005-12-31"), …]."""
    periods = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        first, sep, last = item.partition("-")
        if not (sep and first.isdigit() and last.isdigit() and len(first) == len(last) == 4 and first <= last):
            raise click.BadParameter(f"--periods: {item!r} is not YYYY-YYYY")
        periods.append((item, f"{first}-01-01", f"{last}-12-31"))
    return periods


def _selection_range(text: str) -> tuple[str, str]:
    """``"1995-2010"`` → ("1995-01-01", "2010-12-31")."""
    periods = parse_periods(text)
    if len(periods) != 1:
        raise click.BadParameter(f"--selection: {text!r} is not one YYYY-YYYY")
    return periods[0][1], periods[0][2]


def strategy_overrides(preset: str, overrides) -> dict:
    """The strategy resource's config for a preset plus ``KEY=VALUE`` overrides (validated)."""
    import json

    from pairs_assets.quant.strategy import Strategy, StrategyError

    config = dict(PRESETS[preset])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in Strategy.model_fields:
            raise click.BadParameter(f"--set {item!r}: expected KEY=VALUE with KEY a strategy setting")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    try:
        Strategy.parse(config)
    except StrategyError as exc:
        raise click.BadParameter(str(exc)) from None
    return config


def walk_forward_strategies(names, overrides) -> list:
    """The strategies of ``--strategy`` with ``--set NAME.KEY=VALUE`` (validated), or one line
    refusing an unknown name (listing the known ones) or a bad parameter, before any run."""
    from pairs_assets.assets.walk_forward import resolve_strategies
    from pairs_assets.strategies.base import StrategyPluginError

    try:
        return resolve_strategies(list(names), list(overrides))
    except StrategyPluginError as exc:
        raise click.BadParameter(str(exc), param_hint="--strategy") from None


@main.group("strategies")
def strategies_group() -> None:
    """The strategies: the entry points of group pairs_assets.strategies and the strategies file
    (PAIRS_STRATEGIES_FILE, else <PAIRS_HOME>/strategies.yaml, else the shipped default)."""


@strategies_group.command("list")
def strategies_list() -> None:
    """Every strategy of the strategies file (name, class, enabled, summary), then any entry point
    that failed to load, with the reason."""
    from pairs_assets.strategies.registry import load_registry

    registry = load_registry()
    click.echo(f"strategies file {registry.path} (fingerprint {registry.fingerprint})")
    rows = [
        (e.name, e.class_ref, "yes" if e.enabled else "no", e.cls.summary or e.cls.__doc__ or "")
        for e in registry.entries.values()
    ]
    rows += [(name, "", "-", f"unavailable: {reason}") for name, reason in registry.unavailable.items()]
    width = max([len(r[0]) for r in rows] + [4])
    cls_width = max([len(r[1]) for r in rows] + [5])
    click.echo(f"{'name':<{width}}  {'class':<{cls_width}}  {'enabled':<7}  summary")
    for name, ref, enabled, summary in rows:
        click.echo(
            f"{name:<{width}}  {ref:<{cls_width}}  {enabled:<7}  {summary.strip().splitlines()[0] if summary.strip() else ''}"
        )
    if registry.failures:
        click.echo("")
        click.echo("entry points that failed to load (group pairs_assets.strategies):")
        for failure in registry.failures:
            click.echo(f"  {failure.name}: {failure.reason}")


@strategies_group.command("show")
@click.argument("name")
def strategies_show(name: str) -> None:
    """One strategy: its class, enabled, the file it comes from, and every parameter with its value,
    default and description."""
    import json

    from pairs_assets.strategies.registry import load_registry

    registry = load_registry()
    try:
        entry = registry.get(name)
    except PairsError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    cls = entry.cls
    click.echo(f"name            {entry.name}")
    click.echo(f"class           {entry.class_ref} ({cls.__module__}:{cls.__qualname__})")
    click.echo(f"enabled         {'yes' if entry.enabled else 'no'}")
    click.echo(f"source file     {registry.path}")
    click.echo(f"summary         {cls.summary}")
    click.echo(
        f"sectors combine {cls.combine_sectors}; {'a trial of the selection' if cls.selected else 'fixed in advance'}"
    )
    click.echo("")
    click.echo("parameters (value; default when the file sets another; description)")
    values = entry.plugin.params.model_dump(mode="json")
    for key, info in cls.Params.model_fields.items():
        value = values.get(key)
        default = info.get_default(call_default_factory=True)
        default = default.model_dump(mode="json") if hasattr(default, "model_dump") else default
        marker = "" if json.dumps(value, default=str) == json.dumps(default, default=str) else f" (default {default!r})"
        click.echo(f"  {key} = {json.dumps(value, default=str)}{marker}")
        if info.description:
            click.echo(f"      {info.description}")


@main.command("walk-forward")
@click.option("--start", default="1995-01-03", show_default=True, help="First decision session, YYYY-MM-DD.")
@click.option("--end", default=EMBEDDED_LAST_SESSION, show_default=True, help="Last session, YYYY-MM-DD.")
@click.option("--sector", "sectors", multiple=True, help="Sector(s); default all.")
@click.option("--costs", default="0,5,10,20", show_default=True, help="Basis points per leg, comma-separated.")
@click.option("--lag", default=1, show_default=True, type=int, help="Execution lag: 1, or 0 for comparison only.")
@click.option(
    "--on-drop",
    type=click.Choice(["keep", "exit"]),
    default="keep",
    show_default=True,
    help="An open position whose pair leaves the next config: keep it (until exit/stop/max holding) or exit.",
)
@click.option(
    "--max-holding",
    default=20,
    show_default=True,
    type=int,
    help="Close positions held this many sessions (0 = never).",
)
@click.option(
    "--trials",
    "n_trials",
    default=None,
    type=int,
    help="Override the deflated Sharpe's number of trials (default: counted by the trials ledger in MLflow).",
)
@click.option(
    "--selection",
    default="1995-2010",
    show_default=True,
    help="Selection range YYYY-YYYY (development years): the ledger counts trials on it; DSR there, PSR elsewhere.",
)
@click.option(
    "--bootstrap-block",
    default=21,
    show_default=True,
    type=int,
    help="Block length (sessions) of the Sharpe intervals.",
)
@click.option(
    "--min-trades",
    default=10,
    show_default=True,
    type=int,
    help="Below this many trades Sharpe, t and DSR print as '–'.",
)
@click.option(
    "--gru/--no-gru",
    default=False,
    show_default=True,
    help="Also train each selected pair's GRU per session and trade the configs with its veto (default_gru).",
)
@click.option("--workers", default=0, show_default=True, type=int, help="Processes replaying sectors (0: one per CPU).")
@click.option(
    "--periods",
    default="1995-2005,2006-2015,2016-2022",
    show_default=True,
    help="Sub-periods as YYYY-YYYY, comma-separated (each reported beside the full range).",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="default",
    show_default=True,
    help="Strategy settings: the defaults, the seed design's (the first settings), or the trading-period methodology.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one strategy setting, e.g. --set formation_window=126 (repeatable); with --strategy "
    "NAME.KEY=VALUE sets strategy NAME's parameter.",
)
@click.option(
    "--strategy",
    "strategy_names",
    multiple=True,
    metavar="NAME",
    help="Walk forward this strategy of the strategies file (pairs strategies list), repeatable: every one "
    "side by side, beside the classical baseline. Default: the --preset/--set settings as 'default'.",
)
@click.option("--name", default="default", show_default=True, help="Results go to <PAIRS_HOME>/walk_forward/<name>/.")
@click.option("--skip-load", is_flag=True, help="Assume the bars are already in the store.")
@click.option(
    "--robustness",
    is_flag=True,
    help="Also run the one-step neighbourhood of each tuned setting and the formation phases (each a "
    "recorded walk-forward, so a trial of the ledger); write robustness.csv and robustness.png.",
)
@click.option(
    "--phase-step",
    default=3,
    show_default=True,
    type=int,
    help="With --robustness: every this-many-th formation phase of reselect_every (0: no phases).",
)
def walk_forward_command(
    start,
    end,
    sectors,
    costs,
    lag,
    on_drop,
    max_holding,
    n_trials,
    selection,
    bootstrap_block,
    min_trades,
    gru,
    workers,
    periods,
    preset,
    overrides,
    strategy_names,
    name,
    skip_load,
    robustness,
    phase_step,
) -> None:
    """Replay the daily configs over a range, trade them with lag and costs, report beside the baseline.

    With --robustness the centre (these settings), the one-step neighbours of each tuned setting
    and the formation phases (pairs_assets.quant.walkforward.robustness) run as ordinary
    walk-forwards named <name>.<setting>.<value>; their totals on the selection range (development
    years) and on the rest of the range (held out) go to <PAIRS_HOME>/walk_forward/<name>.robustness/
    as robustness.csv and robustness.png, and to one MLflow run.
    """
    import pandas as pd
    from pydantic import ValidationError

    from pairs_assets.assets.walk_forward import check_history
    from pairs_assets.definitions import defs
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings
    from pairs_assets.settings import StrategySettings
    from resources.walk_forward_outputs import output_dir

    check_sectors(sectors)  # an unknown sector is refused before any run is created
    period_list = parse_periods(periods)
    if robustness:
        if phase_step < 0:
            raise click.BadParameter(f"{phase_step} is below 0", param_hint="--phase-step")
        robust_periods = _robustness_periods(selection, end)
        period_list += [p for p in robust_periods.values() if p[0] not in {q[0] for q in period_list}]
    try:
        settings = WalkForwardSettings(
            start=start,
            end=end,
            sectors=list(sectors) or None,
            costs=costs,
            lag=lag,
            on_drop=on_drop,
            max_holding=max_holding,
            n_trials=n_trials,
            gru=gru,
            workers=workers or None,
            periods=period_list,
            selection=_selection_range(selection),
            bootstrap_block=bootstrap_block,
            min_trades=min_trades,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.BadParameter(f"{'.'.join(map(str, first['loc'])) or 'settings'}: {first['msg']}") from None
    output_dir(paths().home, name)  # refuse a bad name before any work
    if click.get_current_context().get_parameter_source("periods") is not click.core.ParameterSource.DEFAULT:
        # a sub-period asked for by name is reported or refused, never dropped silently
        outside = [label for label, first, last in settings.periods if last < settings.start or first > settings.end]
        if outside:
            raise click.BadParameter(
                f"{', '.join(outside)} {'lies' if len(outside) == 1 else 'lie'} outside the range {settings.start} → {settings.end}: nothing of it would be "
                "replayed; give sub-periods within the range (or widen --start/--end)",
                param_hint="--periods",
            )
    plugins = None
    if strategy_names:
        plugins = walk_forward_strategies(strategy_names, overrides)
        if click.get_current_context().get_parameter_source("preset") is not click.core.ParameterSource.DEFAULT:
            raise click.BadParameter(
                "--preset sets the legacy run's settings; with --strategy set parameters as --set NAME.KEY=VALUE",
                param_hint="--preset",
            )
        if robustness:
            raise click.BadParameter(
                "--robustness varies the legacy run's settings; run it without --strategy", param_hint="--strategy"
            )
        strategy_config = strategy_overrides(preset, ())
    else:
        strategy_config = strategy_overrides(preset, overrides)
    # a window longer than the history is refused here, in one line, before the bars are loaded
    check_history(settings, StrategySettings(**strategy_config) if plugins is None else plugins, paths().history_start)
    instance = _instance()
    click.echo(f"PAIRS_HOME      {paths().home}")
    click.echo(
        f"range           {settings.start} → {settings.end}, costs {', '.join(f'{c:g}' for c in settings.costs)} bp/leg, lag {settings.lag}"
    )
    if not skip_load:
        resources = {k: v for k, v in defs.resources.items() if k in ("store", "bar_source")}
        with dg.build_resources(resources) as built:
            written, seconds = _load_walk_forward_bars(
                settings, StrategySettings(**strategy_config) if plugins is None else plugins, built
            )
        click.echo(f"bars            {written} upserted into the store in {seconds:.1f}s")
    config = {
        "name": name,
        "start": settings.start,
        "end": settings.end,
        "sectors": list(sectors),
        "costs": settings.costs,
        "lag": settings.lag,
        "on_drop": on_drop,
        "max_holding": max_holding,
        "n_trials": n_trials,
        "gru": gru,
        "workers": workers,
        "periods": [list(p) for p in settings.periods],
        "selection": list(settings.selection),
        "bootstrap_block": settings.bootstrap_block,
        "min_trades": settings.min_trades,
    }
    if plugins is not None:
        config["strategies"] = list(strategy_names)
        config["strategy_params"] = list(overrides)
        click.echo(f"strategies      {', '.join(strategy_names)} (beside the classical baseline)")
    if robustness:
        _run_robustness(config, strategy_config, instance, settings, robust_periods, phase_step)
        return
    result = _run_walk_forward_job(config, strategy_config, instance)
    target = output_dir(paths().home, name)
    materialization = result.asset_materializations_for_node("walk_forward")[0]
    bars = materialization.metadata.get("bars")
    if bars is not None and bars.value != "daily closes":  # intraday: say what ours and the baseline traded
        click.echo(f"bars            {bars.value}")
    print_walk_forward_summary(pd.read_csv(target / "summary.csv"), min_trades=settings.min_trades)
    if (target / "score_evidence.csv").exists():
        click.echo("")
        click.echo(
            f"does the score rank pairs by their forward P&L? (Spearman, 95% CI; {settings.lag}-session lag, costs)"
        )
        for row in pd.read_csv(target / "score_evidence.csv").itertuples():
            ci = "" if row.ci_low != row.ci_low else f"  [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
            click.echo(f"  {row.score:<30} {row.spearman:+.4f}{ci}  n={row.n}")
    click.echo("")
    click.echo(f"results         {target}/ (summary.csv, trades.csv, daily_pnl.csv.gz, equity.png)")
    click.echo(
        f"MLflow run      {materialization.metadata['mlflow_run_id'].value} (experiment pairs_trading/walk_forward)"
    )


def _run_walk_forward_job(config: dict, strategy_config: dict, instance, label: str = "walk-forward   "):
    """One in-process run of the ``walk_forward`` asset with a progress bar; raises on failure."""
    from pairs_assets.assets.walk_forward import PROGRESS
    from pairs_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    with click.progressbar(length=1, label=label, show_pos=True, show_eta=True) as bar:

        def report(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        token = PROGRESS.set(report)
        try:
            result = job.execute_in_process(
                instance=instance,
                asset_selection=[dg.AssetKey("walk_forward")],
                run_config={
                    **_quiet(),
                    "ops": {"walk_forward": {"config": config}},
                    "resources": {"strategy": {"config": strategy_config}},
                },
                raise_on_error=False,
            )
        finally:
            PROGRESS.reset(token)
    if not result.success:
        raise RunFailedError(f"walk-forward {config['name']} failed (run {result.run_id}): {step_failure(result)}")
    return result


def _robustness_periods(selection: str, end: str) -> dict[str, tuple[str, str, str]]:
    """``dev``: the selection range; ``held_out``: from the year after it to ``end``'s year."""
    ((label, first, last),) = parse_periods(selection)
    following = int(label[-4:]) + 1
    final = int(str(end)[:4])
    periods = {"dev": (label, first, last)}
    if following <= final:
        periods["held_out"] = (f"{following}-{final}", f"{following}-01-01", f"{final}-12-31")
    return periods


def _run_robustness(config: dict, strategy_config: dict, instance, settings, periods: dict, phase_step: int) -> None:
    """Run the centre and every variant, then write and log the robustness table and heat-map."""
    import pandas as pd

    from pairs_assets.assets.walk_forward import record_robustness
    from pairs_assets.definitions import defs
    from pairs_assets.quant.walkforward.robustness import robustness_table, variants
    from pairs_assets.settings import StrategySettings
    from resources.walk_forward_outputs import output_dir

    name = config["name"]
    centre = StrategySettings(**strategy_config).model_dump(mode="json")
    plan = variants(centre, phase_step)
    click.echo(f"robustness      {len(plan)} walk-forwards: {', '.join(v.label for v in plan)}")
    summaries = []
    for i, variant in enumerate(plan, 1):
        run_name = name if variant.setting == "default" else f"{name}.{variant.setting}.{variant.value}"
        output_dir(paths().home, run_name)
        _run_walk_forward_job(
            {**config, "name": run_name},
            {**strategy_config, **variant.overrides},
            instance,
            label=f"{i:>2}/{len(plan)} {variant.label:<22}",
        )
        summaries.append((variant, pd.read_csv(output_dir(paths().home, run_name) / "summary.csv")))
    table = robustness_table(summaries, {k: p[0] for k, p in periods.items()})
    with dg.build_resources({"model_registry": defs.resources["model_registry"]}) as built:
        target, run_id = record_robustness(
            home=paths().home,
            name=name,
            table=table,
            settings=settings,
            phase_step=phase_step,
            registry=built.model_registry,
        )
    print_robustness(table, settings)
    click.echo("")
    click.echo(f"results         {target}/ (robustness.csv, robustness.png)")
    click.echo(f"MLflow run      {run_id} (experiment pairs_trading/walk_forward)")


def print_robustness(table, settings, echo=click.echo) -> None:
    """The robustness table at the first non-zero cost: each variant's Sharpe per period with its interval."""
    cost = next((c for c in settings.costs if c > 0), settings.costs[0])
    at = table[table["cost_bp"] == cost]
    periods = list(dict.fromkeys(at["period"]))
    labels = {p: at[at["period"] == p]["period_label"].iloc[0] for p in periods}
    echo("")
    echo(
        f"robustness: the total's Sharpe at {cost:g} bp [95% CI]; * the interval excludes zero; "
        f"'–': fewer than {settings.min_trades} trades"
    )
    echo(f"{'variant':<26} " + " ".join(f"{p + ' ' + labels[p]:>30}" for p in periods))
    for variant, rows in at.groupby("variant", sort=False):
        cells = []
        for p in periods:
            r = rows[rows["period"] == p].iloc[0]
            if r.trades < settings.min_trades:
                cells.append(f"– (n={int(r.trades)})")
            else:
                cells.append(
                    _interval(r.sharpe, r.sharpe_low, r.sharpe_high)
                    + (" *" if r.excludes_zero else "")
                    + f" n={int(r.trades)}"
                )
        echo(f"{variant:<26} " + " ".join(f"{c:>30}" for c in cells))


@main.command("paper-replay")
@click.option("--start", required=True, type=DATE, help="First session traded, YYYY-MM-DD.")
@click.option("--end", required=True, type=DATE, help="Last session traded, YYYY-MM-DD.")
@click.option("--sector", "sectors", multiple=True, help="Sector(s); default all.")
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="default",
    show_default=True,
    help="Strategy preset (as for walk-forward).",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one strategy setting (repeatable)."
)
@click.option(
    "--on-drop",
    type=click.Choice(["keep", "exit"]),
    default="keep",
    show_default=True,
    help="A held pair missing from the next config: keep trading it, or exit (both sides get the same).",
)
@click.option("--max-holding", default=20, show_default=True, type=click.IntRange(min=0), help="Sessions (0 = never).")
@click.option(
    "--equity",
    default=100_000.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="The dry-run broker's equity (and the walk-forward's P&L scale).",
)
@click.option(
    "--name",
    default="default",
    show_default=True,
    help="The replay home: <PAIRS_HOME>/paper_replay/<name>/ (replaced).",
)
def paper_replay_command(start, end, sectors, preset, overrides, on_drop, max_holding, equity, name) -> None:
    """Drive the live path over history (recycler → stream → signal_job → dry-run broker → paper book),
    run the walk-forward over the same bars, and print the parity table."""
    import re

    from pairs_assets.definitions import bar_source_for
    from pairs_assets.paper_replay import paper_replay, print_parity
    from pairs_assets.settings import StrategySettings
    from pairs_assets.universe import load_universe

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise click.BadParameter(f"--name {name!r}: letters, digits, '.', '_' or '-' (a folder name)")
    p = paths()
    strategy = StrategySettings(**strategy_overrides(preset, overrides))
    started = time.perf_counter()
    result = paper_replay(
        start,
        end,
        list(sectors),
        universe=load_universe(p.universe_file),
        home=Path(p.home) / "paper_replay" / name,
        history_start=p.history_start,
        strategy=strategy,
        bar_source=bar_source_for(p),
        equity=equity,
        on_drop=on_drop,
        max_holding=max_holding,
        echo=click.echo,
    )
    c = result.counts
    click.echo(
        f"replay home     {result.home} (paper book: paper.sqlite, tables orders, positions, pair_states, trading_signals)"
    )
    click.echo(
        f"live path       {c['sessions']} sessions x {c['sectors']} sector(s): {c['bars_streamed']} bars streamed, "
        f"{c['signal_runs']} signal_job runs{' (intraday: one per bar)' if c['intraday'] else ''}, {c['orders']} orders "
        "(dry-run, filled at the signal bar's close)"
    )
    click.echo("walk-forward    same range, bars and configs; cost 0, lag 0 (the dry-run broker's fill)")
    click.echo("")
    print_parity(result, echo=click.echo)
    click.echo(f"seconds         {json.dumps(result.seconds)}; total {time.perf_counter() - started:.1f}")


def _register_live_commands() -> None:
    from pairs_assets.live.commands import recycler, stream, symbols

    for command in (recycler, stream, symbols):
        main.add_command(command)


_register_live_commands()

if __name__ == "__main__":
    main()
