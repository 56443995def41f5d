"""One IO manager for every stage output: ``<base_dir>/<asset>/<date>/<sector>.{parquet,json}``.

A range run (a single-run backfill, also over a range of one partition) returns
``{partition key: object}`` and gets one file per partition; its inputs are loaded the same way,
``{partition key: object}`` over the range.

DataFrames are written as Parquet, dicts as canonical JSON (sorted keys, 2-space indent). Writes
are atomic and deterministic: the same frame gives byte-identical files, so a re-materialization
replaces a partition exactly.

``base_dir`` is a local or shared path (NFS: every Celery worker must see the same files) or an
fsspec URL (``s3://bucket/pairs``, ``gs://…``, ``memory://…``) read through ``universal_pathlib``.
Local files are written to a temporary file in the same folder, fsynced and renamed; an object
store writes each object in one PUT, which is atomic on its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from upath import UPath
from upath.implementations.local import LocalPath

from pairs_assets.util import atomic_write_bytes as local_atomic_write_bytes
from pairs_assets.util import split_partition_key


def as_upath(location: str | os.PathLike) -> UPath:
    """A path or an fsspec URL as a ``UPath`` (a plain ``pathlib.Path`` subclass for local paths)."""
    if isinstance(location, UPath):
        return location
    text = os.fspath(location) if not isinstance(location, str) else location
    if text.startswith("file://"):
        text = text[len("file://") :]
    return UPath(text)


def is_local(path: UPath | Path) -> bool:
    return isinstance(path, LocalPath) or not isinstance(path, UPath)


def atomic_write_bytes(path: Path | UPath | str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old or the new file, never a part."""
    path = as_upath(path)
    if not is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)  # one object PUT: atomic on object stores
        return
    local_atomic_write_bytes(path, payload)  # temp file in the same folder, fsync, rename


def canonical_json(document: dict) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def partition_path(base_dir: str | Path, asset: str, partition_key: str, suffix: str) -> Path:
    """``<base>/<asset>/<date>/<sector><suffix>`` for a ``date|sector`` key; ``<base>/<asset><suffix>`` unpartitioned.

    ``base_dir`` may be an fsspec URL; the result is then a remote ``UPath``.
    """
    base = as_upath(base_dir)
    if not partition_key:
        return base / f"{asset}{suffix}"
    date, sector = split_partition_key(partition_key)
    if not sector:
        return base / asset / f"{date}{suffix}"
    return base / asset / date / f"{sector}{suffix}"


def _read_parquet(path: UPath) -> pd.DataFrame:
    with path.open("rb") as handle:
        return pd.read_parquet(handle)


def _read_json(path: UPath) -> dict:
    return json.loads(path.read_text())


def _is_range_run(context: dg.OutputContext | dg.InputContext) -> bool:
    """Whether the step runs over a partition range (a single-run backfill), even a range of one.

    A run with a partition key (``dagster/partition``) is a one-partition run; a partitioned asset's
    step without one is a range run (``dagster/asset_partition_range_start``/``_end``), whose asset
    returns — and whose downstream assets receive — ``{partition key: object}``, also when the range
    holds a single partition (``--partition-range 'A...A'``, a one-partition job backfill).
    """
    return context.has_asset_partitions and not context.has_partition_key


class PartitionedFileIOManager(dg.ConfigurableIOManager):
    """Parquet (DataFrames) or JSON (dicts) per partition under ``base_dir`` (a path or fsspec URL)."""

    base_dir: str = Field(
        description="Local/shared folder or fsspec URL (PAIRS_IO_BASE) that every step process can read."
    )

    def _path(self, asset_key: dg.AssetKey, partition_key: str, suffix: str) -> Path:
        # a prefixed key (a strategy's stages, <prefix>/<stage>) gets its own folder <base>/<prefix>/<stage>/
        return partition_path(self.base_dir, "/".join(asset_key.path), partition_key, suffix)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        if _is_range_run(context):
            self._handle_range_output(context, obj)
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
        if _is_range_run(context):
            # a range run (single-run backfill): every partition's object, by partition key
            return {str(key): self._load_one(context, str(key)) for key in context.asset_partition_keys}
        return self._load_one(context, context.asset_partition_key if context.has_asset_partitions else "")

    def _handle_range_output(self, context: dg.OutputContext, obj) -> None:
        """A range run's output: ``{partition key: object}``, one file per partition (each atomic)."""
        keys = sorted(str(k) for k in context.asset_partition_keys)
        name = context.asset_key.to_user_string()
        if not isinstance(obj, dict):
            raise TypeError(
                f"{name}: a range run of {len(keys)} partitions must return {{partition key: object}}, "
                f"got a {type(obj).__name__}"
            )
        if sorted(obj) != keys:
            missing, extra = sorted(set(keys) - set(obj)), sorted(set(obj) - set(keys))
            raise ValueError(
                f"{name}: a range run's output must hold exactly the run's partitions; "
                f"missing {missing[:5]}{' …' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
            )
        for key in keys:
            value = obj[key]
            if isinstance(value, pd.DataFrame):
                atomic_write_bytes(self._path(context.asset_key, key, ".parquet"), parquet_bytes(value))
            elif isinstance(value, dict):
                atomic_write_bytes(self._path(context.asset_key, key, ".json"), canonical_json(value))
            else:
                raise TypeError(f"{name} partition {key}: cannot store a {type(value).__name__}")
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(as_upath(self.base_dir) / "/".join(context.asset_key.path))),
                "files_written": len(keys),
            }
        )

    def load_partition(self, asset: str, partition_key: str):
        """The stored object of ``asset``'s partition ``partition_key``, or None if it has none.

        For an asset that reads its own previous output (``gru_models`` reuses unchanged models)
        through the IO manager that wrote it, wherever ``base_dir`` points.
        """
        for suffix, reader in ((".parquet", _read_parquet), (".json", _read_json)):
            path = partition_path(self.base_dir, asset, partition_key, suffix)
            if path.exists():
                return reader(path)
        return None

    def _load_one(self, context: dg.InputContext, key: str):
        upstream = context.upstream_output
        asset_key = context.asset_key
        for suffix, reader in ((".parquet", _read_parquet), (".json", _read_json)):
            path = self._path(asset_key, key, suffix)
            if path.exists():
                return reader(path)
        raise FileNotFoundError(
            f"{asset_key.to_user_string()} partition {key} has not been materialized "
            f"(no file under {as_upath(self.base_dir) / '/'.join(asset_key.path)}); materialize it first"
            + (
                f" (upstream of {upstream.asset_key.to_user_string()})"
                if upstream is not None and upstream.has_asset_key
                else ""
            )
        )
