"""Run config cannot send Alpaca's keys where it points (issue 21 item 2).

The case reproduced: a run whose config sets ``url_override`` to a listener on 127.0.0.1 (and
passes ``{"env": "ALPACA_API_KEY"}`` as the key) used to deliver both of Alpaca's keys in clear to
that listener, from the bar source and from the broker. The rule now lives below both resources
(``pairs_assets.market.endpoints``) and each resource applies it when a run sets it up and again
when it builds an alpaca-py client: the listener receives no Alpaca key, the run is refused with
one line naming the resource and the URL, never the key.

Real alpaca-py clients against a bare HTTP listener on 127.0.0.1 that records the credential
headers of every request it gets; the recycler path is exercised with its own keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.definitions import build_definitions
from pairs_assets.live.recycler import RecyclerSettings, recycler_in_thread
from pairs_assets.market.endpoints import CredentialsDestinationError, credentials_for_destination, is_alpaca_url
from pairs_assets.settings import Paths
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from pairs_assets_tests.live.helpers import store_with_bars
from pairs_assets_tests.live.test_trading_signals_asset import resources as signal_resources
from pairs_assets_tests.live.test_trading_signals_asset import world  # noqa: F401  (fixture)
from resources.alpaca_source import AlpacaBarSource
from resources.broker import BrokerResource
from resources.market_data import orders_table, trading_signals_table

ALPACA_KEY = "AKCANARYKEY0021"
ALPACA_SECRET = "SKCANARYSECRET0021"
PARTITION = "2022-12-28|energy"
ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")
#: generous: `dg launch` loads the definitions in a subprocess on a busy 2-core machine
COMMAND_TIMEOUT_S = 300


class _Capture(BaseHTTPRequestHandler):
    """A host that is not Alpaca: answers like Alpaca's data and trading APIs, records every credential."""

    seen: list[tuple[str, str, str]] = []

    def log_message(self, *args) -> None:
        pass

    def _record_and_reply(self) -> None:
        _Capture.seen.append(
            (self.path, self.headers.get("APCA-API-KEY-ID") or "", self.headers.get("APCA-API-SECRET-KEY") or "")
        )
        if self.path.startswith("/v2/account"):
            payload = {"equity": "50000", "status": "ACTIVE"}
        elif self.path.startswith("/v2/positions"):
            payload = []
        elif self.path.startswith("/v2/orders"):
            payload = {"id": "1", "status": "accepted", "filled_avg_price": None}
        else:
            payload = {"bars": {}, "next_page_token": None}
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _record_and_reply


@contextlib.contextmanager
def capture_listener():
    """(url, seen): a listener on 127.0.0.1 and the (path, key, secret) of every request it got."""
    _Capture.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _leaked(seen) -> list[str]:
    return [value for _, key, secret in seen for value in (key, secret) if value in (ALPACA_KEY, ALPACA_SECRET)]


@pytest.fixture()
def alpaca_env(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", ALPACA_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", ALPACA_SECRET)
    monkeypatch.delenv("PAIRS_RECYCLER_KEY", raising=False)
    monkeypatch.delenv("PAIRS_RECYCLER_SECRET", raising=False)


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value in ("RESOURCE_INIT_FAILURE", "STEP_FAILURE")]
    assert failures, "the run did not fail"
    # refused when the run sets the resource up, before the step does any work
    assert failures[0].event_type_value == "RESOURCE_INIT_FAILURE", [e.event_type_value for e in failures]
    error = failures[0].event_specific_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def _raw_bars_run(tmp_path, bar_source_config: dict) -> dg.ExecuteInProcessResult:
    """raw_bars of one partition from the definitions `PAIRS_BAR_SOURCE=alpaca` builds, with run config."""
    p = Paths.from_env({"PAIRS_HOME": str(tmp_path / "home"), "PAIRS_BAR_SOURCE": "alpaca"})
    job = build_definitions(p).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        return job.execute_in_process(
            run_config={"resources": {"bar_source": {"config": bar_source_config}}},
            partition_key=PARTITION,
            asset_selection=[dg.AssetKey("raw_bars")],
            instance=instance,
            raise_on_error=False,
        )


@pytest.mark.parametrize("keys", ["env", "literal", "none"])
def test_bar_source_run_config_pointing_at_a_listener_sends_no_alpaca_key(alpaca_env, tmp_path, keys):
    with capture_listener() as (url, seen):
        config: dict = {"url_override": url}
        if keys == "env":
            config.update(api_key={"env": "ALPACA_API_KEY"}, secret_key={"env": "ALPACA_SECRET_KEY"})
        elif keys == "literal":
            config.update(api_key=ALPACA_KEY, secret_key=ALPACA_SECRET)
        # "none": only the URL (run config replaces the resource's whole config: the keys are then unset)
        result = _raw_bars_run(tmp_path, config)
    assert _leaked(seen) == []
    assert not result.success
    if keys == "none":  # no key configured: the listener gets the anonymous placeholder, nothing else
        assert seen and {(key, secret) for _, key, secret in seen} == {("recycler", "recycler")}
        return
    assert seen == []
    message = _failure_message(result)
    assert "bar_source" in message and url in message and "ALPACA_API_KEY" in message
    assert ALPACA_KEY not in message and ALPACA_SECRET not in message


def _signals_with_broker(instance, store, run_config_broker: dict) -> dg.ExecuteInProcessResult:
    """trading_signals with an order to send; the broker `PAIRS_BROKER=alpaca-paper` builds, replaced by run config
    (Dagster replaces a resource's whole config with the run's: the mode is given again)."""
    broker = BrokerResource(
        mode="alpaca-paper", api_key=dg.EnvVar("ALPACA_API_KEY"), secret_key=dg.EnvVar("ALPACA_SECRET_KEY")
    )
    return dg.materialize(
        [setup.stand_in_trading_config, trading_signals],
        selection=["trading_signals"],
        partition_key=setup.PARTITION,
        instance=instance,
        resources={**signal_resources(store), "broker": broker},
        run_config={
            "ops": {"trading_signals": {"config": {"bar_cutoff": "2022-12-29T15:01:00Z"}}},
            "resources": {"broker": {"config": run_config_broker}},
        },
        raise_on_error=False,
    )


def test_broker_run_config_pointing_at_a_listener_sends_no_alpaca_key(world, alpaca_env):  # noqa: F811
    store, instance, _ = world
    with capture_listener() as (url, seen):
        result = _signals_with_broker(
            instance,
            store,
            {
                "mode": "alpaca-paper",
                "url_override": url,
                "api_key": {"env": "ALPACA_API_KEY"},
                "secret_key": {"env": "ALPACA_SECRET_KEY"},
            },
        )
    assert _leaked(seen) == [] and seen == []
    assert not result.success
    message = _failure_message(result)
    assert "broker" in message and url in message and ALPACA_SECRET not in message and ALPACA_KEY not in message
    assert store.read_table(orders_table).empty and store.read_table(trading_signals_table).empty


def test_broker_with_its_own_keys_still_trades_on_a_stand_in(world, alpaca_env):  # noqa: F811
    """Keys that are not Alpaca's go where the run config points (a paper-trading stand-in here)."""
    store, instance, _ = world
    with capture_listener() as (url, seen):
        result = _signals_with_broker(
            instance,
            store,
            {"mode": "alpaca-paper", "url_override": url, "api_key": "standin-key", "secret_key": "standin-secret"},
        )
    assert result.success
    assert seen and {(key, secret) for _, key, secret in seen} == {("standin-key", "standin-secret")}
    assert not store.read_table(orders_table).empty


@pytest.mark.parametrize(
    "url",
    [
        "http://data.alpaca.markets",
        "http://paper-api.alpaca.markets",
        "ws://stream.data.alpaca.markets/v2/iex",
        "https://data.alpaca.markets.evil.example",
        "https://data.alpaca.markets@127.0.0.1:9",
    ],
)
def test_alpaca_keys_to_a_look_alike_or_plain_http_alpaca_host_are_refused(alpaca_env, url):
    assert not is_alpaca_url(url)
    with pytest.raises(CredentialsDestinationError) as refused:
        credentials_for_destination("bar_source", url, ALPACA_KEY, ALPACA_SECRET)
    assert ALPACA_KEY not in str(refused.value) and ALPACA_SECRET not in str(refused.value)
    assert "bar_source" in str(refused.value) and "\n" not in str(refused.value)
    # the resources refuse before alpaca-py is asked to build a client, whatever the keys' spelling
    for key, secret in ((ALPACA_KEY, "other"), ("other", ALPACA_SECRET), (f" {ALPACA_KEY}\n", "other")):
        with pytest.raises(CredentialsDestinationError):
            AlpacaBarSource(api_key=key, secret_key=secret, url_override=url).load_bars(
                ["KO"], pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2022-12-02", tz="UTC")
            )
        with pytest.raises(CredentialsDestinationError):
            BrokerResource(mode="alpaca-paper", api_key=key, secret_key=secret, url_override=url).account_equity()


def test_alpaca_keys_go_to_alpaca_over_https(alpaca_env):
    for url in (None, "https://data.alpaca.markets", "https://paper-api.alpaca.markets", "HTTPS://API.ALPACA.MARKETS/"):
        assert credentials_for_destination("broker", url, ALPACA_KEY, ALPACA_SECRET) == (ALPACA_KEY, ALPACA_SECRET)


def test_no_keys_for_another_url_get_the_recyclers_or_the_placeholder(alpaca_env, monkeypatch):
    url = "http://127.0.0.1:8765"
    assert credentials_for_destination("bar_source", url, None, None) == ("recycler", "recycler")
    monkeypatch.setenv("PAIRS_RECYCLER_KEY", "rk")
    monkeypatch.setenv("PAIRS_RECYCLER_SECRET", "rs")
    assert credentials_for_destination("bar_source", url, None, None) == ("rk", "rs")
    monkeypatch.setenv("PAIRS_RECYCLER_KEY", ALPACA_KEY)  # a recycler key that is Alpaca's is still Alpaca's
    with pytest.raises(CredentialsDestinationError):
        credentials_for_destination("bar_source", url, None, None)


def test_recycler_path_still_works_with_its_own_keys(alpaca_env, monkeypatch, sqlite_url, tmp_path):
    """PAIRS_ALPACA_DATA_URL at a recycler that checks keys: the recycler's keys, through run config too."""
    monkeypatch.setenv("PAIRS_RECYCLER_KEY", "recycler-key")
    monkeypatch.setenv("PAIRS_RECYCLER_SECRET", "recycler-secret")
    store = store_with_bars(sqlite_url, ["KO"], 5)
    settings = RecyclerSettings(port=0, api_key="recycler-key", secret_key="recycler-secret")
    with recycler_in_thread(store, settings) as recycler:
        p = Paths.from_env(
            {"PAIRS_HOME": str(tmp_path), "PAIRS_BAR_SOURCE": "alpaca", "PAIRS_ALPACA_DATA_URL": recycler.http_url}
        )
        source = build_definitions(p).resolve_job_def("daily_pairs").resource_defs["bar_source"]
        with dg.build_resources({"bar_source": source}) as built:
            bars = built.bar_source.load_bars(
                ["KO"], pd.Timestamp("2022-11-01", tz="UTC"), pd.Timestamp("2022-11-02", tz="UTC")
            )
        assert not bars.empty and set(bars["symbol"]) == {"KO"}
        # run config naming the recycler's variables is accepted too
        configured = AlpacaBarSource(
            api_key=os.environ["PAIRS_RECYCLER_KEY"], secret_key="recycler-secret", url_override=recycler.http_url
        )
        assert not configured.load_bars(
            ["KO"], pd.Timestamp("2022-11-01", tz="UTC"), pd.Timestamp("2022-11-02", tz="UTC")
        ).empty
        assert recycler.stats.http_requests >= 2


def _dg_env(tmp_path) -> dict[str, str]:
    pairs_home = tmp_path / "pairs_home"
    dagster_home = pairs_home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAIRS_", "DAGSTER_", "MLFLOW_", "ALPACA_"))}
    env.update(
        PAIRS_HOME=str(pairs_home),
        DAGSTER_HOME=str(dagster_home),
        PAIRS_DATABASE_URL=f"sqlite:///{pairs_home / 'market_data.sqlite'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{pairs_home / 'mlflow' / 'mlflow.db'}",
        PAIRS_BAR_SOURCE="alpaca",
        ALPACA_API_KEY=ALPACA_KEY,
        ALPACA_SECRET_KEY=ALPACA_SECRET,
        VIRTUAL_ENV=sys.prefix,
        PATH=f"{DG.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        COLUMNS="200",
    )
    return env


@pytest.mark.slow
def test_the_issues_dg_launch_command_sends_no_alpaca_key(tmp_path):
    """The measured command, verbatim but for the port: `dg launch --assets raw_bars … --config-json …`."""
    with capture_listener() as (url, seen):
        config = {
            "resources": {
                "bar_source": {
                    "config": {
                        "url_override": url,
                        "api_key": {"env": "ALPACA_API_KEY"},
                        "secret_key": {"env": "ALPACA_SECRET_KEY"},
                    }
                }
            }
        }
        proc = subprocess.run(
            [str(DG), "launch", "--assets", "raw_bars", "--partition", PARTITION, "--config-json", json.dumps(config)],
            cwd=ROOT,
            env=_dg_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    output = proc.stdout + proc.stderr
    assert _leaked(seen) == [] and seen == [], output[-4000:]
    assert proc.returncode != 0
    assert "CredentialsDestinationError" in output and url in output
    assert ALPACA_KEY not in output and ALPACA_SECRET not in output


def test_the_stream_refuses_a_recycler_key_that_is_alpacas(alpaca_env):
    """The stream applies the same rule: a recycler key equal to Alpaca's is refused before any connection."""
    from pairs_assets.live.stream import StreamError, StreamSettings

    environ = {"PAIRS_RECYCLER_KEY": ALPACA_KEY, "PAIRS_RECYCLER_SECRET": "rs"}
    with pytest.raises(
        StreamError, match=r"stream: refused to send Alpaca's keys .* ws://127\.0\.0\.1:9/v2/iex"
    ) as refused:
        StreamSettings.from_env(["AAPL"], url="ws://127.0.0.1:9/v2/iex", environ=environ)
    assert ALPACA_KEY not in str(refused.value)
    ok = StreamSettings.from_env(
        ["AAPL"], url="ws://127.0.0.1:9/v2/iex", environ={"PAIRS_RECYCLER_KEY": "rk", "PAIRS_RECYCLER_SECRET": "rs"}
    )
    assert ok.stream_credentials() == ("rk", "rs") and ok.history_credentials() == ("rk", "rs")
