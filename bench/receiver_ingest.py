"""Receiver ingest, intervals per second: SQLite, PostgreSQL with one receiver and with two.

    .venv/bin/python bench/receiver_ingest.py                 # 200 000 intervals
    .venv/bin/python bench/receiver_ingest.py --intervals 20000

Realistic batches (500 one-minute intervals each, gzip JSON, bearer token,
Idempotency-Key) are POSTed by 4 client threads to real receiver processes
(`python -m agent receiver`), on a PostgreSQL started for the run (initdb in a
temporary directory, as the tests do: fsync off, so the figures are the
receiver's and the database's CPU, not this machine's disk). Beside them, in
the same run and into the same table with its unique keys:

- raw COPY of the same rows (no duplicate check: the floor);
- raw executemany of the same rows (plain INSERT, no duplicate check);
- the three ways to insert that keep the store's rule "a record once, whatever
  the batch": executemany with ON CONFLICT DO NOTHING, COPY into a temporary
  table then INSERT ... SELECT ON CONFLICT DO NOTHING, and one INSERT from
  unnest(arrays) ON CONFLICT DO NOTHING; PostgresStore uses the first;
  each batch in one transaction, like the receiver.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.table import Figure, render  # noqa: E402
from receiver._backends import open_store, parse_for, put_body  # noqa: E402
from receiver._postgres_schema import INSERT_INTERVALS, INTERVAL_COLUMNS  # noqa: E402
from receiver._request import parse_batch  # noqa: E402
from receiver._rows import rows  # noqa: E402
from tests.fixtures.postgres import (  # noqa: E402
    MISSING,
    PostgresServer,
    bindir,
    receiver_process,
    start,
)

TOKEN = "bench-token"
PER_BATCH = 500
SENDERS = 4
COLUMNS = [name for name, _ in INTERVAL_COLUMNS]


def documents(total: int) -> list[dict[str, Any]]:
    """Batches of PER_BATCH 1-minute intervals: gateways of 20 devices, a day at a time."""
    out: list[dict[str, Any]] = []
    start = datetime.fromisoformat("2026-11-26T00:00:00+08:00")
    sequence: dict[str, int] = {}
    made = 0
    gateway_number = 0
    while made < total:
        gateway = {
            "id": f"gw{gateway_number:04d}",
            "enterprise_id": "91510100MA61234567",
            "region_code": "510100",
            "industry_code": "C3011",
            "timezone": "Asia/Shanghai",
        }
        gateway_number += 1
        records = []
        for device in range(20):
            for minute in range(min(1440, (total - made) // 20 + 1)):
                begin = start + timedelta(minutes=minute)
                kwh = 0.5 + (minute % 13) * 0.1
                records.append(
                    {
                        "device": f"m{device:02d}",
                        "carrier": "electricity",
                        "start": begin.isoformat(),
                        "end": (begin + timedelta(minutes=1)).isoformat(),
                        "quantity": kwh,
                        "unit": "kWh",
                        "kwh": kwh,
                        "tce_kg": round(kwh * 0.1229, 6),
                        "co2_kg": round(kwh * 0.5703, 6),
                        "scope": 2,
                        "factor": {
                            "id": "cn-grid-2022",
                            "value": 0.5703,
                            "unit": "kgCO2/kWh",
                            "source": "MEE 2024 No. 12",
                            "year": 2022,
                        },
                        "coverage": 1.0,
                        "quality": "good",
                    }
                )
        records = records[: total - made]
        for n in range(0, len(records), PER_BATCH):
            seq = sequence.get(gateway["id"], 0) + 1
            sequence[gateway["id"]] = seq
            out.append(
                {
                    "schema_version": 1,
                    "gateway": gateway,
                    "sequence": seq,
                    "factor_set": "cn-mee-2022",
                    "intervals": records[n : n + PER_BATCH],
                    "events": [],
                    "samples": [],
                }
            )
        made += len(records)
    return out


def post_all(urls: list[str], bodies: list[tuple[str, bytes]]) -> float:
    """Seconds for SENDERS threads to POST every body, spread round-robin over `urls`."""
    failures: list[str] = []
    barrier = threading.Barrier(SENDERS + 1)

    def send(part: list[tuple[str, bytes]], url: str) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            barrier.wait()
            for key, body in part:
                answer = http.post(
                    "/api/v1/batches",
                    content=body,
                    headers={
                        "Content-Encoding": "gzip",
                        "Idempotency-Key": key,
                        "Authorization": f"Bearer {TOKEN}",
                    },
                )
                if answer.status_code != 200 or answer.json()["status"] != "stored":
                    failures.append(f"{key}: {answer.status_code} {answer.text[:200]}")

    threads = [
        threading.Thread(target=send, args=(bodies[n::SENDERS], urls[n % len(urls)]))
        for n in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} batches not stored, first: {failures[0]}")
    return took


def over_http(database: str, receivers: int, bodies: list[tuple[str, bytes]], work: Path) -> float:
    token = work / "token"
    token.write_text(TOKEN)
    with ExitStack() as stack:
        urls = [
            stack.enter_context(receiver_process(database, token)).url for _ in range(receivers)
        ]
        return post_all(urls, bodies)


def fresh(server: PostgresServer) -> str:
    """A new database with the receiver's schema (its migrations run by opening the store)."""
    url = server.create_database()
    open_store(url).close()
    return url


def timed_batches(
    url: str,
    batches: list[list[tuple[Any, ...]]],
    insert: Callable[[psycopg.Cursor[Any], list[tuple[Any, ...]]], None],
) -> float:
    """Seconds to insert every batch's rows, one transaction per batch, on one connection."""
    with psycopg.connect(url) as db:
        batch_id = db.execute(
            "INSERT INTO batches (key, gateway, sequence, schema_version, factor_set,"
            " received_at, body_sha256) VALUES ('bench:1', 'bench', 1, 1, 'x', 'x', 'x')"
            " RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        db.commit()
        began = time.perf_counter()
        for batch in batches:
            with db.transaction(), db.cursor() as cursor:
                insert(cursor, [(batch_id, *row) for row in batch])
        return time.perf_counter() - began


_NAMES = ", ".join(["batch_id", *COLUMNS])
_VALUES = ", ".join(["%s"] * (len(COLUMNS) + 1))


def raw_copy(cursor: psycopg.Cursor[Any], batch: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY intervals ({_NAMES}) FROM STDIN") as copy:
        for row in batch:
            copy.write_row(row)


def raw_executemany(cursor: psycopg.Cursor[Any], batch: list[tuple[Any, ...]]) -> None:
    cursor.executemany(f"INSERT INTO intervals ({_NAMES}) VALUES ({_VALUES})", batch)


def executemany_on_conflict(cursor: psycopg.Cursor[Any], batch: list[tuple[Any, ...]]) -> None:
    """What PostgresStore does."""
    cursor.executemany(INSERT_INTERVALS, batch)


def copy_then_insert(cursor: psycopg.Cursor[Any], batch: list[tuple[Any, ...]]) -> None:
    cursor.execute(
        "CREATE TEMPORARY TABLE staging (LIKE intervals INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    with cursor.copy(f"COPY staging ({_NAMES}) FROM STDIN") as copy:
        for row in batch:
            copy.write_row(row)
    cursor.execute(
        f"INSERT INTO intervals ({_NAMES}) SELECT {_NAMES} FROM staging ON CONFLICT DO NOTHING"
    )


_UNNEST = (
    f"INSERT INTO intervals ({_NAMES}) SELECT %s, * FROM unnest("
    + ", ".join(f"%s::{kind}[]" for _, kind in INTERVAL_COLUMNS)
    + ") ON CONFLICT DO NOTHING"
)


def unnest_on_conflict(cursor: psycopg.Cursor[Any], batch: list[tuple[Any, ...]]) -> None:
    """One INSERT of the batch from one array per column."""
    columns = [list(column) for column in zip(*(row[1:] for row in batch), strict=True)]
    cursor.execute(_UNNEST, (batch[0][0], *columns))


def check(url: str, expected: int) -> None:
    with psycopg.connect(url) as db:
        count = db.execute("SELECT count(*) FROM intervals").fetchone()[0]  # type: ignore[index]
    if count != expected:
        raise RuntimeError(f"{count} intervals stored, {expected} sent")


def figures(total: int = 200_000) -> list[Figure]:
    binaries = bindir()
    if binaries is None:
        print(f"receiver ingest: skipped: {MISSING}", file=sys.stderr)
        return []
    docs = documents(total)
    bodies = [
        (f"{d['gateway']['id']}:{d['sequence']}", gzip.compress(json.dumps(d).encode()))
        for d in docs
    ]
    batches = [rows(*parse_batch(json.dumps(d).encode()))[0] for d in docs]
    server = start(binaries)
    took: dict[str, float] = {}
    try:
        os.environ["PGPASSFILE"] = str(server.passfile)
        with tempfile.TemporaryDirectory(prefix="bench-receiver-") as d:
            work = Path(d)
            for name, insert in (
                ("raw COPY", raw_copy),
                ("raw executemany", raw_executemany),
                ("executemany ON CONFLICT", executemany_on_conflict),
                ("COPY to temp + INSERT ON CONFLICT", copy_then_insert),
                ("unnest ON CONFLICT", unnest_on_conflict),
            ):
                url = fresh(server)
                took[name] = timed_batches(url, batches, insert)
                check(url, total)
                print(f"  {name}: {total / took[name]:,.0f} intervals/s", flush=True)
            took["PostgresStore.put"] = store_put(fresh(server), docs)
            print(f"  PostgresStore.put: {total / took['PostgresStore.put']:,.0f} intervals/s")
            took["sqlite, 1 receiver"] = over_http(str(work / "central.db"), 1, bodies, work)
            print(f"  SQLite, 1 receiver: {total / took['sqlite, 1 receiver']:,.0f} intervals/s")
            for receivers in (1, 2):
                url = fresh(server)
                name = f"postgresql, {receivers} receiver{'s' if receivers > 1 else ''}"
                took[name] = over_http(url, receivers, bodies, work)
                check(url, total)
                print(f"  {name}: {total / took[name]:,.0f} intervals/s", flush=True)
    finally:
        server.stop()
    rate = {name: total / seconds for name, seconds in took.items()}
    copy, many = rate["raw COPY"], rate["raw executemany"]
    label = f"{total:,} intervals, {PER_BATCH}/batch"
    return [
        Figure(f"receiver ingest HTTP, SQLite, 1 receiver ({label})", rate["sqlite, 1 receiver"],
               "intervals/s", copy, "raw COPY into PostgreSQL"),
        Figure(f"receiver ingest HTTP, PostgreSQL, 1 receiver ({label})",
               rate["postgresql, 1 receiver"], "intervals/s", copy, "raw COPY"),
        Figure(f"receiver ingest HTTP, PostgreSQL, 2 receivers ({label})",
               rate["postgresql, 2 receivers"], "intervals/s", copy, "raw COPY"),
        Figure("receiver ingest HTTP, PostgreSQL, 2 receivers vs 1",
               rate["postgresql, 2 receivers"], "intervals/s", rate["postgresql, 1 receiver"],
               "1 receiver"),
        Figure("PostgresStore.put in process (INSERT ... SELECT from the JSON)",
               rate["PostgresStore.put"],
               "intervals/s", many, "raw executemany"),
        Figure("PostgreSQL unnest ON CONFLICT", rate["unnest ON CONFLICT"], "intervals/s", copy,
               "raw COPY"),
        Figure("PostgreSQL executemany ON CONFLICT", rate["executemany ON CONFLICT"],
               "intervals/s", copy, "raw COPY"),
        Figure("PostgreSQL COPY to temp + INSERT ON CONFLICT",
               rate["COPY to temp + INSERT ON CONFLICT"], "intervals/s", copy, "raw COPY"),
        Figure("PostgreSQL raw executemany", many, "intervals/s", copy, "raw COPY"),
    ]  # fmt: skip


def store_put(url: str, docs: list[dict[str, Any]]) -> float:
    """Seconds for PostgresStore.put of every batch, one after another, in this process,
    handed what the receiver hands it (receiver._backends: the body, no parsed document)."""
    store = open_store(url)
    try:
        parsed = []
        for d in docs:
            data = json.dumps(d).encode()
            parsed.append((f"{d['gateway']['id']}:{d['sequence']}", *parse_for(store, data),
                           data, hashlib.sha256(data).hexdigest()))  # fmt: skip
        began = time.perf_counter()
        for key, batch, document, data, digest in parsed:
            put_body(store, key, batch, document, data, digest)
        return time.perf_counter() - began
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(render(figures(args.intervals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
