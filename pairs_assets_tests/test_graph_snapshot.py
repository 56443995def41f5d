"""A snapshot of the asset graph: keys, dependencies (with window sizes), partitions and checks.

An accidental change to the graph fails here. After an intended change, regenerate with
``PAIRS_UPDATE_SNAPSHOT=1 pytest pairs_assets_tests/test_graph_snapshot.py`` and review the diff.
"""

import json
import os
from pathlib import Path

import dagster as dg

from pairs_assets.definitions import defs

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")


def _mapping(mapping) -> str:
    if isinstance(mapping, dg.MultiPartitionMapping):
        parts = []
        for name, dim in sorted(mapping.downstream_mappings_by_upstream_dimension.items()):
            inner = dim.partition_mapping
            if isinstance(inner, dg.TimeWindowPartitionMapping):
                parts.append(f"{name}:window[{inner.start_offset},{inner.end_offset}]")
            else:
                parts.append(f"{name}:{type(inner).__name__}")
        return ",".join(parts)
    return type(mapping).__name__ if mapping is not None else "default"


def graph_snapshot() -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        deps = {}
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            deps[parent.to_user_string()] = _mapping(graph.get_partition_mapping(key, parent))
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": deps,
            "partitions": (
                {d.name: type(d.partitions_def).__name__ for d in partitions.partitions_defs}
                if isinstance(partitions, dg.MultiPartitionsDefinition)
                else (type(partitions).__name__ if partitions else None)
            ),
            "checks": sorted(c.name for c in node.check_keys),
            "blocking_checks": sorted(
                spec.name for spec in defs.resolve_assets_def(key).check_specs if spec.blocking
            ) if node.is_materializable else [],
        }
    out["__jobs__"] = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    out["__schedules__"] = sorted(s.name for s in defs.schedules or [])
    out["__sensors__"] = sorted(s.name for s in defs.sensors or [])
    return out


def test_asset_graph_matches_snapshot():
    current = graph_snapshot()
    if os.environ.get("PAIRS_UPDATE_SNAPSHOT") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
