"""`pairs init` prints the new home's DAGSTER_HOME, also when an earlier home's is exported (issue 18 item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_two_homes_one_after_the_other_in_one_shell(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PAIRS_HOME", "PAIRS_DATABASE_URL")}
    env["PAIRS"] = f"{sys.executable} -m pairs_assets.cli"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = f"""
set -e
export PAIRS_HOME={tmp_path / "one"}
eval "$($PAIRS init | grep '^export ')"
echo "first DAGSTER_HOME=$DAGSTER_HOME"
export PAIRS_HOME={tmp_path / "two"}
$PAIRS init
eval "$($PAIRS init | grep '^export ')"
echo "second DAGSTER_HOME=$DAGSTER_HOME"
"""
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"first DAGSTER_HOME={tmp_path / 'one' / 'dagster'}" in out
    assert f"export DAGSTER_HOME={tmp_path / 'two' / 'dagster'}" in out
    assert f"note: DAGSTER_HOME was {tmp_path / 'one' / 'dagster'}" in out
    assert f"second DAGSTER_HOME={tmp_path / 'two' / 'dagster'}" in out
    assert (tmp_path / "two" / "dagster" / "dagster.yaml").exists()
