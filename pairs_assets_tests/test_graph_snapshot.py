"""A snapshot of the asset graph: keys, dependencies (with window sizes), partitions and checks.

An accidental change to the graph fails here, and so does a missing snapshot: the test only reads
graph_snapshot.json. After an intended change, regenerate it with the explicit command
``.venv/bin/python -m pairs_assets_tests.update_graph_snapshot``, review ``git diff`` and commit it.
"""

import json
from pathlib import Path

import dagster as dg
import pytest

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
            "blocking_checks": sorted(spec.name for spec in defs.resolve_assets_def(key).check_specs if spec.blocking)
            if node.is_materializable
            else [],
        }
    out["__jobs__"] = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    out["__schedules__"] = sorted(s.name for s in defs.schedules or [])
    out["__sensors__"] = sorted(s.name for s in defs.sensors or [])
    return out


def render(snapshot: dict) -> str:
    """The snapshot file's exact text (sorted keys, two-space indent, final newline)."""
    return json.dumps(snapshot, indent=2, sort_keys=True) + "\n"


UPDATE_COMMAND = ".venv/bin/python -m pairs_assets_tests.update_graph_snapshot"


def differences(expected: dict, current: dict) -> list[str]:
    """One line per top-level entry added, removed or changed between two snapshots."""
    lines = [f"+ {k} (new)" for k in sorted(current.keys() - expected.keys())]
    lines += [f"- {k} (gone)" for k in sorted(expected.keys() - current.keys())]
    for key in sorted(expected.keys() & current.keys()):
        if expected[key] != current[key]:
            lines.append(f"~ {key}: snapshot {json.dumps(expected[key], sort_keys=True)}")
            lines.append(f"  {' ' * len(key)}  now      {json.dumps(current[key], sort_keys=True)}")
    return lines


def test_asset_graph_matches_snapshot():
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT.name} is missing: create it with `{UPDATE_COMMAND}`, review it and commit it")
    expected = json.loads(SNAPSHOT.read_text())
    current = graph_snapshot()
    if current != expected:
        pytest.fail(
            "the asset graph differs from graph_snapshot.json:\n"
            + "\n".join(differences(expected, current))
            + f"\nIf the change is intended, run `{UPDATE_COMMAND}` and commit the new snapshot."
        )


def test_snapshot_comparison_names_what_changed():
    base = {"raw_bars": {"deps": {}}, "__jobs__": ["daily_pairs"]}
    changed = {"raw_bars": {"deps": {"x": "default"}}, "new_asset": {}}
    lines = differences(base, changed)
    assert lines[0] == "+ new_asset (new)" and lines[1] == "- __jobs__ (gone)"
    assert lines[2].startswith("~ raw_bars: snapshot") and '"x": "default"' in lines[3]
    assert differences(base, json.loads(render(base))) == []
