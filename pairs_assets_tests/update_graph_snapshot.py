"""Rewrite pairs_assets_tests/graph_snapshot.json from the current asset graph (the explicit update command).

    .venv/bin/python -m pairs_assets_tests.update_graph_snapshot

The snapshot test only reads the file; after an intended change to assets, dependencies, partitions,
checks, jobs, schedules or sensors, run this, review ``git diff pairs_assets_tests/graph_snapshot.json``
and commit it. The definitions load on a temporary PAIRS_HOME that is removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile


def main() -> int:
    home = tempfile.mkdtemp(prefix="pairs_snapshot_home_")
    try:
        os.environ["PAIRS_HOME"] = home
        os.environ["DAGSTER_HOME"] = home
        for name in ("PAIRS_BARS_FILE", "PAIRS_UNIVERSE_FILE", "PAIRS_DATABASE_URL", "PAIRS_HISTORY_START"):
            os.environ.pop(name, None)
        from pairs_assets_tests.test_graph_snapshot import SNAPSHOT, differences, graph_snapshot, render

        current = graph_snapshot()
        previous = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
        changes = differences(previous, current)
        SNAPSHOT.write_text(render(current))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {SNAPSHOT} ({len(current)} entries)")
    print("\n".join(changes) if changes else "no change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
