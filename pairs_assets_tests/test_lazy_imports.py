"""Importing the definitions does not import the heavy numerics (issue 9, item 16).

A code server imports ``pairs_assets.definitions`` on every start; under load that took 40 s of
wall time and `pairs dev` timed out. The stages import torch, mlflow, arch and statsmodels when
they run. (How long the import takes is measured in benchmarks/bench_import.py, not asserted.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "mlflow", "arch", "statsmodels", "scipy.stats", "numba", "matplotlib", "sklearn"]


def test_importing_the_definitions_leaves_the_heavy_modules_unimported(tmp_path):
    code = (
        "import json, sys; import pairs_assets.definitions as d; d.defs.resolve_asset_graph(); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {"PATH": "/usr/bin:/bin", "PAIRS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    process = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert json.loads(process.stdout.strip().splitlines()[-1]) == []
