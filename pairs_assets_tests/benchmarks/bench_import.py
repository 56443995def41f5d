"""Benchmark: the cost of importing the definitions (what every code-server start pays).

Run: ``python pairs_assets_tests/benchmarks/bench_import.py [--repeats 3] [--tree PATH ...]``

Each repeat is a fresh interpreter running ``import pairs_assets.definitions`` (bytecode already
compiled: a "cold" process, warm file cache). Prints wall and CPU seconds (median) and which heavy
modules the import pulled in. ``--tree`` adds another source tree of the project (e.g. an older
commit unpacked with ``git archive <commit> | tar -x -C /tmp/old``) to compare before/after with
the same interpreter. Asserts nothing about time (it depends on the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "mlflow", "arch", "statsmodels", "scipy.stats", "numba", "matplotlib", "polars"]
CODE = (
    f"import json, sys; import pairs_assets.definitions; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
)


def one_import(tree: Path) -> tuple[float, float, list[str]]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PAIRS_HOME": home, "DAGSTER_HOME": home, "PYTHONPATH": str(tree)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CODE], cwd=tree, env=env, capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], help="another source tree to compare")
    args = parser.parse_args()
    print(f"{'tree':<40} {'wall s (median)':>16} {'cpu s (median)':>15}  heavy modules imported")
    for tree in [ROOT, *map(Path, args.tree)]:
        one_import(tree)  # compile bytecode first
        runs = [one_import(tree) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{str(tree)[-40:]:<40} {wall:>16.2f} {cpu:>15.2f}  {', '.join(runs[-1][2]) or 'none'}")


if __name__ == "__main__":
    main()
