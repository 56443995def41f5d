"""The shared helpers: UTC normalisation, partition keys, atomic writes, URL redaction."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.util import atomic_write_bytes, redact_text, redact_url, split_partition_key, to_naive_utc, to_utc


def test_to_utc_takes_naive_values_as_utc_and_converts_zoned_ones():
    assert to_utc("2022-12-28 21:00") == pd.Timestamp("2022-12-28 21:00", tz="UTC")
    assert to_utc("2022-12-28T16:00:00-05:00") == pd.Timestamp("2022-12-28 21:00", tz="UTC")
    assert str(to_utc(pd.Timestamp("2022-07-01 16:00", tz="America/New_York")).tz) == "UTC"
    naive = to_naive_utc(pd.Timestamp("2022-07-01 16:00", tz="America/New_York"))
    assert naive == dt.datetime(2022, 7, 1, 20, 0) and naive.tzinfo is None
    assert to_naive_utc("2022-07-01 20:00") == dt.datetime(2022, 7, 1, 20, 0)


def test_split_partition_key_reads_strings_and_multi_partition_keys():
    assert split_partition_key("2022-12-28|technology") == ("2022-12-28", "technology")
    assert split_partition_key(dg.MultiPartitionKey({"sector": "energy", "date": "2022-12-28"})) == (
        "2022-12-28",
        "energy",
    )
    assert split_partition_key("2022-12-28") == ("2022-12-28", "")


def test_atomic_write_replaces_the_whole_file_or_leaves_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "file.json"
    assert atomic_write_bytes(target, b"old") == target and target.read_bytes() == b"old"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["file.json"]


@pytest.mark.parametrize(
    ("url", "kwargs", "expected"),
    [
        (
            "postgresql+psycopg2://pairs:hunter2@db:5432/market?sslmode=require",
            {},
            "postgresql+psycopg2://pairs:***@db:5432/market?sslmode=require",
        ),
        ("redis://:hunter2@127.0.0.1:6379/1", {}, "redis://:***@127.0.0.1:6379/1"),
        ("amqp://desk:p@ss@mq:5672/pairs", {}, "amqp://desk:***@mq:5672/pairs"),
        ("not a url://u:hunter2@h/x", {}, "not a url://u:***@h/x"),
        ("sqlite:////tmp/x/mlflow.db", {}, "sqlite:////tmp/x/mlflow.db"),
        (
            "http://user:s3cret@mlflow:5000/?token=abc",
            {"keep_user": False, "keep_query": False},
            "http://***@mlflow:5000/",
        ),
        ("https://token@host/path", {"keep_user": False}, "https://***@host/path"),
    ],
)
def test_redact_url(url, kwargs, expected):
    assert redact_url(url, **kwargs) == expected


def test_redact_text_masks_quoted_urls_and_the_bare_password():
    url = "postgresql://pairs:hunter%212@127.0.0.1:1/market"
    text = f"connection to {url} failed: password 'hunter!2' rejected"
    assert (
        redact_text(text, url)
        == "connection to postgresql://pairs:***@127.0.0.1:1/market failed: password '***' rejected"
    )
    assert redact_text("see http://u:p@h/x", keep_user=False) == "see http://***@h/x"
