"""Factors kept once on disk (buffer/_factors.py): a record names its factor by number,
and every way out of the buffer gives the record back as it was committed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer import Store
from domain.records import Commit, IntervalRow

HEADER = {"schema_version": 1, "gateway": {"id": "gw"}, "factor_set": "cn-mee-2022"}
GRID = {"id": "cn_sichuan_2022", "value": 0.1404, "unit": "kgCO2/kWh",
        "source": "生态环境部 国家统计局 公告2024年第33号 关于发布2022年电力二氧化碳排放因子的公告",
        "year": 2022, "verification": "corroborated"}  # fmt: skip
GAS = {"id": "gbt2589_natural_gas", "value": 2.162, "unit": "kgCO2/m3",
       "source": "GB/T 2589-2020", "year": 2020, "verification": None}  # fmt: skip
compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def record(i: int, factor: dict | None) -> IntervalRow:
    body = {"device": f"m{i % 4}", "start": 60.0 * i, "quantity": float(i), "factor": factor,
            "quality": "good"}  # fmt: skip
    return IntervalRow(body["device"], 60.0 * i, 60.0, body)


def batch_texts(store: Store, joined: bool) -> list[str]:
    """Every record, as the batches of one drain carry them."""
    out: list[str] = []
    outbox = store.outbox("sync")
    while (batch := outbox.next_batch(0, 7, HEADER, joined)) is not None:
        if batch.joined is not None:
            out += [compact(r) for r in json.loads(b"[" + batch.joined + b"]")]
        else:
            out += batch.intervals
        outbox.finish_batch(batch.seq)
    return out


def test_a_factor_is_stored_once_and_each_record_names_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "buffer.db")
    try:
        store.commit(Commit(intervals=[record(i, GRID if i % 2 else GAS) for i in range(10)]))
        conn = store.db.conn
        assert conn.execute("SELECT count(*) FROM factors").fetchone() == (2,)
        for body, ref in conn.execute("SELECT body, factor FROM intervals"):
            assert json.loads(body)["factor"] == {"$ref": ref}
            assert "生态环境部" not in body and "GB/T" not in body
        (size,) = conn.execute("SELECT sum(length(CAST(body AS BLOB))) FROM intervals").fetchone()
        whole = sum(
            len(compact(record(i, GRID if i % 2 else GAS).body).encode()) for i in range(10)
        )
        assert size < whole / 2  # the factor was more than half of each record
    finally:
        store.close()


@given(
    factors=st.lists(st.sampled_from([GRID, GAS, None]), min_size=1, max_size=30),
    joined=st.booleans(),
    reopen=st.booleans(),
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_batch_carries_each_record_as_committed(
    tmp_path_factory: pytest.TempPathFactory, factors: list, joined: bool, reopen: bool
) -> None:
    """Joined or record by record, after a restart or not: the same text."""
    path = tmp_path_factory.mktemp("factors") / "buffer.db"
    rows = [record(i, f) for i, f in enumerate(factors)]
    store = Store(path)
    store.commit(Commit(intervals=rows[: len(rows) // 2]))
    if reopen:  # the factors known come back from the file
        store.close()
        store = Store(path)
    try:
        store.commit(Commit(intervals=rows[len(rows) // 2 :]))
        assert batch_texts(store, joined) == [compact(r.body) for r in rows]
    finally:
        store.close()


def test_history_for_a_platform_is_whole_too(tmp_path: Path) -> None:
    """What an HJ 212 platform asks for again (Store.intervals_between)."""
    store = Store(tmp_path / "buffer.db")
    try:
        rows = [record(i, GRID) for i in range(4)] + [record(4, None)]
        store.commit(Commit(intervals=rows))
        devices = sorted({r.device for r in rows})
        assert store.intervals_between(devices, 60.0, 0, 300, 10) == [compact(r.body) for r in rows]
    finally:
        store.close()


def test_records_written_before_schema_3_keep_their_factor_inline(tmp_path: Path) -> None:
    """A record with no factor number is read as it is stored."""
    store = Store(tmp_path / "buffer.db")
    try:
        inline = record(0, GRID)
        store.db.conn.execute(
            "INSERT INTO intervals (device, start, length, body) VALUES (?, ?, ?, ?)",
            [inline.device, inline.start, inline.length, compact(inline.body)],
        )
        store.commit(Commit(intervals=[record(1, GRID)]))
        assert batch_texts(store, joined=True) == [
            compact(inline.body),
            compact(record(1, GRID).body),
        ]
    finally:
        store.close()


def test_a_read_only_store_of_a_file_not_migrated_reads_records_inline(tmp_path: Path) -> None:
    """`status` opens the file read-only, before the daemon migrated it: no factors table."""
    path = tmp_path / "buffer.db"
    Store(path).close()
    inline = record(0, GRID)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE factors")
    db.execute(
        "INSERT INTO intervals (device, start, length, body) VALUES (?, ?, ?, ?)",
        [inline.device, inline.start, inline.length, compact(inline.body)],
    )
    db.close()
    store = Store(path, readonly=True)
    try:
        assert store.factors.texts == {}
        history = store.intervals_between([inline.device], 60.0, 0, 60, 10)
        assert history == [compact(inline.body)]
    finally:
        store.close()
