"""One IO manager for every stage output: ``<base_dir>/<asset>/<date>/<sector>.{parquet,json}``.

DataFrames are written as Parquet, dicts as canonical JSON (sorted keys, 2-space indent). Writes
are atomic (temporary file in the same folder, fsync, rename) and deterministic: the same frame
gives byte-identical files, so a re-materialization replaces a partition exactly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def canonical_json(document: dict) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def partition_path(base_dir: str | Path, asset: str, partition_key: str, suffix: str) -> Path:
    """``<base>/<asset>/<date>/<sector><suffix>`` for a ``date|sector`` key; ``<base>/<asset><suffix>`` unpartitioned."""
    if not partition_key:
        return Path(base_dir) / f"{asset}{suffix}"
    date, _, sector = partition_key.partition("|")
    if not sector:
        return Path(base_dir) / asset / f"{date}{suffix}"
    return Path(base_dir) / asset / date / f"{sector}{suffix}"


class PartitionedFileIOManager(dg.ConfigurableIOManager):
    """Parquet (DataFrames) or JSON (dicts) per partition under ``base_dir``."""

    base_dir: str

    def _path(self, asset_key: dg.AssetKey, partition_key: str, suffix: str) -> Path:
        return partition_path(self.base_dir, asset_key.path[-1], partition_key, suffix)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        key = context.asset_partition_key if context.has_asset_partitions else ""
        if isinstance(obj, pd.DataFrame):
            path = self._path(context.asset_key, key, ".parquet")
            atomic_write_bytes(path, parquet_bytes(obj))
        elif isinstance(obj, dict):
            path = self._path(context.asset_key, key, ".json")
            atomic_write_bytes(path, canonical_json(obj))
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: cannot store a {type(obj).__name__}")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        asset_key = context.asset_key
        key = context.asset_partition_key if context.has_asset_partitions else ""
        for suffix, reader in ((".parquet", pd.read_parquet), (".json", lambda p: json.loads(Path(p).read_text()))):
            path = self._path(asset_key, key, suffix)
            if path.exists():
                return reader(path)
        raise FileNotFoundError(
            f"{asset_key.to_user_string()} partition {key} has not been materialized "
            f"(no file under {Path(self.base_dir) / asset_key.path[-1]}); materialize it first"
            + (f" (upstream of {upstream.asset_key.to_user_string()})" if upstream is not None and upstream.has_asset_key else "")
        )
