"""Reproduce the UI screenshots in ``docs/img/`` (used by ``docs/ui.md``) and time each page's load.

Run from the repository root (the project's virtual environment, the project on PYTHONPATH)::

    PYTHONPATH=. .venv/bin/python docs/screenshots.py [--sector technology] [--sessions 10]
        [--home DIR] [--skip-load] [--out docs/img]

What it does, on a fresh temporary home (``--home`` to choose/keep one; otherwise a new
``/tmp/pairs_screens_*`` folder, left in place so its logs can be read):

1. ``pairs init`` — PAIRS_HOME=<home>, DAGSTER_HOME=<home>/dagster (the project's dagster.yaml);
2. ``pairs load-bars --sector SECTOR`` over the history the range needs: the 1,320 sessions (the
   default ``history_sessions``) before the first session of the range, so the range's own
   ``raw_bars`` partitions are left to the backfill (``--skip-load`` when the home already has them);
3. starts ``dagster-webserver -h 127.0.0.1 -p <free port> -w workspace.yaml`` and
   ``dagster-daemon run -w workspace.yaml`` on that instance (logs: <home>/logs/);
4. launches the UI's backfill through the webserver's GraphQL ``launchPartitionBackfill`` mutation
   — what *Materialize all* on the ``daily_pairs`` group sends: every asset of the group
   (``raw_bars`` included) × the last SESSIONS sessions ending 2022-12-28 × SECTOR — and waits
   while the daemon executes it;
5. starts headless Chromium (``/usr/bin/chromium``, DevTools protocol over a local port), opens
   each page, waits until it has rendered (its expected text is there and no spinner is left),
   times that, and saves a PNG in ``--out`` (default ``docs/img/``; each shrunk under 400 KB):

   * ``daily_pairs_lineage.png`` — the ``daily_pairs`` asset group's lineage graph;
   * ``backfill.png`` — the backfill's page (Overview): partitions targeted / materialized per asset;
   * ``backfill_runs.png`` — the backfill's Runs tab: the one run it made;
   * ``raw_bars_checks.png`` — the ``raw_bars`` asset's Checks tab;
   * ``ohlc_consistent_partitions.png`` — the ``ohlc_consistent`` check's Partitions view;

6. prints a table (page, seconds to render; the log adds each page's slowest GraphQL requests) and stops every process it started (Chromium, the
   daemon and the webserver, each by its process group).

Needs: the project's environment (dagster, dagster-webserver, websockets, Pillow), Chromium, and a
few minutes on a 2-core machine (the load ~40 s, the backfill's one run ~1–2 min).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAST = "2022-12-28"  # the embedded data's last session
GROUP = "daily_pairs"
CHECK = "ohlc_consistent"
MAX_PNG = 400_000
CHROMIUM = "/usr/bin/chromium"

LAUNCH = """
mutation Launch($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs(limit: 20) { id status } }
  }
}"""
LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } ... on PythonError { message } } } } } }"""
GROUP_ASSETS = "{ assetNodes { assetKey { path } groupName } }"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A process started in its own process group (so its children stop with it)."""

    def __init__(self, name: str, cmd: list[str], env: dict, logdir: Path):
        self.name = name
        self.logfile = open(logdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.logfile, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.logfile.close()


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 600) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.loads(r.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def wait_for_webserver(url: str, server: Server, timeout: float = 600) -> str:
    """Until the code location has loaded; its repository address (``repo@location``)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the webserver exited ({server.proc.returncode}); see {server.logfile.name}")
        try:
            entries = graphql(url, LOCATIONS, timeout=30)["workspaceOrError"]["locationEntries"]
            for e in entries:
                loaded = e["locationOrLoadError"]
                if loaded and loaded["__typename"] == "RepositoryLocation":
                    return f"{loaded['repositories'][0]['name']}@{e['name']}"
                if loaded and loaded["__typename"] == "PythonError":
                    raise RuntimeError(f"the code location did not load: {loaded['message']}")
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(2)
    raise TimeoutError("the webserver did not load the code location")


# --- Chromium over the DevTools protocol -------------------------------------------------------------

READY_JS = """
(() => {
  const needles = %s;
  const text = document.body ? document.body.innerText : '';
  const spinners = document.querySelectorAll('[class*="Spinner"], [class*="spinner"], [title="Loading…"], [aria-label="Loading"]').length
    + (text.match(/Loading/g) || []).length;
  return spinners === 0 && needles.every(n => text.includes(n));
})()"""

CLICK_TAB_JS = """
(() => {
  const want = %s;
  const tabs = [...document.querySelectorAll('[role="tab"], button, a')].filter(e => e.innerText && e.innerText.trim() === want);
  if (!tabs.length) return false;
  tabs[tabs.length - 1].click();   // the check detail's tab (the asset page's own tab comes first)
  return true;
})()"""


ZOOM_IN_JS = """
(() => {
  const button = [...document.querySelectorAll('button')].find(b => b.innerHTML.includes('zoom_in'));
  if (button) button.click();
  return !!button;
})()"""


class Browser:
    def __init__(self, ws):
        self.ws = ws
        self.n = 0
        self.graphql: dict[str, list] = {}  # request id -> [operation, start, end]

    def _event(self, msg: dict) -> None:
        """Times the page's GraphQL requests (from the Network domain's events)."""
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent" and "/graphql" in params["request"]["url"]:
            try:
                operation = json.loads(params["request"].get("postData") or "{}").get("operationName")
            except ValueError:
                operation = None
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(params["request"]["url"]).query)
            operation = operation or (query.get("op") or ["?"])[0]
            self.graphql[params["requestId"]] = [operation, params["timestamp"], None]
        elif method in ("Network.loadingFinished", "Network.loadingFailed") and params.get("requestId") in self.graphql:
            self.graphql[params["requestId"]][2] = params["timestamp"]

    def slowest(self, n: int = 3) -> str:
        done = sorted(((end - start, op) for op, start, end in self.graphql.values() if end), reverse=True)[:n]
        pending = [op for op, _, end in self.graphql.values() if end is None]
        return ", ".join(f"{op} {secs:.1f} s" for secs, op in done) + (
            f"; unfinished: {', '.join(pending)}" if pending else ""
        )

    async def call(self, method: str, **params):
        self.n += 1
        n = self.n
        await self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if "method" in msg:
                self._event(msg)
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def eval(self, js: str):
        r = await self.call("Runtime.evaluate", expression=js, returnByValue=True)
        return r.get("result", {}).get("value")

    async def wait(self, js: str, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await self.eval(js):
                return True
            await asyncio.sleep(0.25)
        return False

    async def ready(self, needles: list[str], timeout: float) -> bool:
        """Rendered: the needles are on the page, no spinner, and it stayed so for a second."""
        js = READY_JS % json.dumps(needles)
        while await self.wait(js, timeout):
            await asyncio.sleep(1.0)
            if await self.eval(js):
                return True
        return False

    async def shot(self, path: Path, width: int) -> None:
        data = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        path.write_bytes(shrink(data, width))


def shrink(png: bytes, width: int = 1600) -> bytes:
    """PNG at most ``width`` px wide and under MAX_PNG bytes: as is, else quantized to 256 colours,
    else scaled down."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        png = out.getvalue()
    if len(png) <= MAX_PNG:
        return png
    scale = 1.0
    while True:
        im = img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)), Image.LANCZOS)
        out = io.BytesIO()
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        if out.tell() <= MAX_PNG or scale < 0.4:
            return out.getvalue()
        scale *= 0.85


async def capture(url: str, pages: list[dict], out: Path, logdir: Path) -> list[tuple[str, str]]:
    import websockets

    port = free_port()
    profile = tempfile.mkdtemp(prefix="pairs_chromium_")
    chrome = Server(
        "chromium",
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1600,1000",
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        os.environ.copy(),
        logdir,
    )
    rows = []
    try:
        ws_url = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = [t for t in json.loads(r.read()) if t["type"] == "page"]
                if targets:
                    ws_url = targets[0]["webSocketDebuggerUrl"]
                    break
            except OSError:
                pass
            await asyncio.sleep(0.5)
        if ws_url is None:
            raise RuntimeError("Chromium's DevTools endpoint did not come up")
        async with websockets.connect(ws_url, max_size=64 * 2**20) as ws:
            b = Browser(ws)
            await b.call("Page.enable")
            await b.call("Runtime.enable")
            await b.call("Network.enable")
            for page in pages:
                width, height = page.get("viewport", (1600, 1000))
                await b.call(
                    "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
                )
                log(f"page {page['name']}: {page['path']}")
                start = time.perf_counter()
                b.graphql.clear()
                await b.call("Page.navigate", url=url + page["path"])
                ok = await b.ready(page["needles"], page.get("timeout", 120))
                if ok and page.get("zoom_in"):
                    for _ in range(page["zoom_in"]):
                        await b.eval(ZOOM_IN_JS)
                        await asyncio.sleep(0.3)
                    ok = await b.ready(page["needles"], page.get("timeout", 120))
                clicked_s = None
                if ok and page.get("click"):
                    rows.append(
                        (f"{page['name']}: the page before the click", f"{time.perf_counter() - start - 1.0:.1f}")
                    )
                    clicked = await b.wait(CLICK_TAB_JS % json.dumps(page["click"]), 30)
                    start = time.perf_counter()
                    ok = clicked and await b.ready(page["after_click"], page.get("timeout", 120))
                    clicked_s = time.perf_counter() - start - 1.0
                seconds = time.perf_counter() - start - 1.0  # less the one-second steadiness wait
                if page.get("scroll_js"):
                    await b.eval(page["scroll_js"])
                    await asyncio.sleep(1.0)
                await asyncio.sleep(page.get("settle", 1.0))
                await b.shot(out / page["file"], page.get("viewport", (1600, 0))[0])
                size = (out / page["file"]).stat().st_size
                name = page["name"] + (f": after clicking *{page['click']}*" if clicked_s is not None else "")
                rows.append((name, f"{seconds:.1f}" if ok else f"> {page.get('timeout', 120)} (not rendered)"))
                log(
                    f"  {'rendered' if ok else 'NOT rendered'} in {seconds:.1f} s -> {page['file']} ({size // 1000} KB)"
                )
                log(f"  slowest GraphQL requests: {b.slowest()}")
    finally:
        chrome.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sector", default="technology")
    parser.add_argument("--sessions", type=int, default=10, help="sessions in the backfill, ending 2022-12-28")
    parser.add_argument("--home", type=Path, default=None, help="PAIRS_HOME (default: a new temporary folder)")
    parser.add_argument("--skip-load", action="store_true", help="the home already holds the history's raw_bars")
    parser.add_argument("--backfill-id", default=None, help="screenshot this backfill instead of launching one")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--only", action="append", default=None, help="only the page(s) whose PNG name starts so")
    parser.add_argument("--backfill-timeout", type=float, default=1200.0)
    args = parser.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="pairs_screens_"))).resolve()
    logdir = home / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PAIRS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update({k: env[k] for k in ("PAIRS_HOME", "DAGSTER_HOME")})
    sys.path.insert(0, str(ROOT))
    from pairs_assets import partitions
    from pairs_assets.settings import StrategySettings, paths

    sessions = [str(d.date()) for d in partitions.sessions_in_range(paths().history_start, LAST)]
    history = StrategySettings().history_sessions
    dates = sessions[-args.sessions :]
    first_load = sessions[-args.sessions - history - 1]
    last_load = sessions[-args.sessions - 1]
    log(f"home {home}; range {dates[0]}...{dates[-1]} × {args.sector}; history {first_load}...{last_load}")

    subprocess.run([str(BIN / "pairs"), "init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    if not args.skip_load and not args.backfill_id:
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "pairs"), "load-bars", "--start", first_load, "--end", last_load, "--sector", args.sector],
            cwd=ROOT,
            env=env,
            check=True,
        )
        log(f"history loaded in {time.perf_counter() - start:.0f} s")

    servers: list[Server] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str]] = []
    try:
        start = time.perf_counter()
        web = Server(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            env,
            logdir,
        )
        servers.append(web)
        repo = wait_for_webserver(url, web)
        rows.append(("webserver: code location loaded", f"{time.perf_counter() - start:.1f}"))
        log(f"webserver {url} ({repo}) up in {rows[-1][1]} s")

        backfill_id = args.backfill_id
        if backfill_id is None:
            servers.append(Server("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, logdir))
            assets = [
                n["assetKey"]["path"] for n in graphql(url, GROUP_ASSETS)["assetNodes"] if n["groupName"] == GROUP
            ]
            keys = [f"{d}|{args.sector}" for d in dates]
            start = time.perf_counter()
            answer = graphql(
                url, LAUNCH, {"p": {"assetSelection": [{"path": a} for a in assets], "partitionNames": keys}}
            )
            launched = answer["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"launchPartitionBackfill: {launched}")
            backfill_id = launched["backfillId"]
            rows.append(
                (f"GraphQL launch: {len(assets)} assets × {len(keys)} partitions", f"{time.perf_counter() - start:.1f}")
            )
            log(f"backfill {backfill_id} launched in {rows[-1][1]} s: {', '.join('/'.join(a) for a in assets)}")
            deadline = time.time() + args.backfill_timeout
            status = None
            while time.time() < deadline:
                b = graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
                if b["status"] != status:
                    log(f"  backfill {b['status']}; runs {[(r['id'][:8], r['status']) for r in b['runs']]}")
                    status = b["status"]
                if status not in ("REQUESTED", "CANCELING", "FAILING"):
                    break
                time.sleep(5)
            runs = graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["runs"]
            rows.append(
                (
                    f"backfill executed (daemon): {status}, runs {', '.join(r['status'] for r in runs)}",
                    f"{time.perf_counter() - start:.0f}",
                )
            )
            servers.pop().stop()  # the daemon: nothing more to run while the pages are timed

        pages = [
            {
                "name": f"asset group `{GROUP}` (lineage)",
                "file": "daily_pairs_lineage.png",
                "path": f"/locations/{repo}/asset-groups/{GROUP}",
                "needles": ["raw_bars", "cointegrated_pairs"],
                # a wider viewport: at 1600 px Dagster draws the 7 nodes zoomed out (names only); at 2400 px
                # it draws the full cards (status, checks, partitions), kept at 2400 px
                "viewport": (2400, 1350),
                "settle": 3.0,
            },
            {
                "name": "backfill page: Overview (partitions per asset)",
                "file": "backfill.png",
                "path": f"/runs/b/{backfill_id}",
                "needles": ["raw_bars", "cointegrated_pairs", "trading_config"],
            },
            {
                "name": "backfill page: Runs",
                "file": "backfill_runs.png",
                "path": f"/runs/b/{backfill_id}?tab=runs",
                "needles": ["Succeeded"],
            },
            {
                "name": "raw_bars Checks tab",
                "file": "raw_bars_checks.png",
                "path": "/assets/raw_bars?view=checks",
                "needles": [CHECK, "bars_unique"],
                "timeout": 600,
            },
            {
                "name": f"raw_bars → {CHECK} check",
                "file": f"{CHECK}_partitions.png",
                "path": f"/assets/raw_bars?view=checks&checkDetail={CHECK}",
                "needles": [CHECK],
                "click": "Partitions",
                "after_click": [CHECK],
                "timeout": 600,
            },
        ]
        pages = [p for p in pages if not args.only or any(p["file"].startswith(o) for o in args.only)]
        rows += asyncio.run(capture(url, pages, args.out, logdir))
    finally:
        for s in reversed(servers):
            s.stop()

    print("\n| page | seconds to render |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds} |")
    print(f"\nscreenshots in {args.out}; logs and instance in {home}")


if __name__ == "__main__":
    main()
