"""The `pairs` command a new user runs first: demo (load the window in one run, then daily_pairs)."""

import json
from pathlib import Path

from click.testing import CliRunner

from pairs_assets.cli import main
from pairs_assets.settings import paths


def test_demo_for_one_sector_loads_bars_and_writes_the_config():
    result = CliRunner().invoke(main, ["demo", "--as-of", "2022-12-28", "--sector", "financial"])
    assert result.exit_code == 0, result.output
    # the default strategy reads 1,320 sessions (the 1,300-session GRU window at a formation up to 20 sessions back)
    assert "loading raw_bars 2017-10-02...2022-12-28 (1320 sessions × 1 sectors) in one run" in result.output
    config = Path(paths().outputs_dir) / "trading_config" / "2022-12-28" / "financial.json"
    assert "financial    ok" in result.output and str(config) in result.output
    document = json.loads(config.read_text())
    assert document["sector"] == "financial" and document["effective_session"] == "2022-12-29"


def test_unknown_sector_is_refused():
    result = CliRunner().invoke(
        main, ["load-bars", "--start", "2022-12-01", "--end", "2022-12-28", "--sector", "crypto"]
    )
    assert result.exit_code != 0 and "unknown sector(s) crypto" in result.output
