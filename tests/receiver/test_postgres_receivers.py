"""Several receiver processes on one PostgreSQL database, as behind a load balancer.

Real processes (`python -m agent receiver --db postgresql://...`), real HTTP on
127.0.0.1, and the database read back directly: what matters is what is
stored, once, whatever the interleaving.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from receiver._postgres import MIGRATIONS
from tests.fixtures.batches import CHONGQING, GATEWAY, batch, interval, key
from tests.fixtures.postgres import PostgresServer, receiver_process

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

TOKEN = "s3cret-token"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def minutes(count: int, first: int = 0, gateway_kwh: float = 1.0) -> list[dict[str, Any]]:
    """`count` 1-minute intervals from minute `first` of 2026-11-26 (Chengdu); kWh varies."""
    return [
        interval(
            "main_incomer",
            f"2026-11-26T{n // 60:02d}:{n % 60:02d}:00+08:00",
            1,
            kwh=gateway_kwh + (n % 7) * 0.25,
        )
        for n in range(first, first + count)
    ]


def post(http: httpx.Client, document: dict[str, Any]) -> httpx.Response:
    return http.post(
        "/api/v1/batches",
        content=gzip.compress(json.dumps(document).encode()),
        headers={
            "Content-Encoding": "gzip",
            "Idempotency-Key": key(document),
            "Authorization": f"Bearer {TOKEN}",
        },
    )


def stored(url: str) -> tuple[int, int, float]:
    """Batches, intervals and the sum of kWh in the database."""
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT (SELECT count(*) FROM batches), count(*), coalesce(sum(kwh), 0) FROM intervals"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), float(row[2])


def test_two_receivers_given_the_same_batches_at_once_store_each_record_once(
    postgres_url: str, token_file: Path
) -> None:
    """Two receiver processes, two threads posting to each, all the same batches at the same
    moment, plus re-cut batches under other keys: each key is stored once, each interval once."""
    day = minutes(1440)
    originals = [
        batch(sequence=n + 1, gateway=gateway, intervals=day[n * 240 : (n + 1) * 240])
        for gateway in (GATEWAY, CHONGQING)
        for n in range(6)
    ]
    # an agent that re-batched its backlog after a crash: other keys, the same intervals
    recut = [
        batch(sequence=100 + n, gateway=GATEWAY, intervals=day[n * 240 + 120 : n * 240 + 360])
        for n in range(5)
    ]
    documents = originals + recut
    with (
        receiver_process(postgres_url, token_file) as a,
        receiver_process(postgres_url, token_file) as b,
    ):
        start = threading.Barrier(4)
        answers: list[tuple[str, str]] = []
        lock = threading.Lock()

        def sender(url: str, order: list[dict[str, Any]]) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                start.wait()
                for document in order:
                    answer = post(http, document)
                    assert answer.status_code == 200, answer.text
                    with lock:
                        answers.append((key(document), answer.json()["status"]))

        senders = [
            threading.Thread(target=sender, args=(a.url, documents)),
            threading.Thread(target=sender, args=(a.url, documents[::-1])),
            threading.Thread(target=sender, args=(b.url, documents)),
            threading.Thread(target=sender, args=(b.url, documents[::-1])),
        ]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()

    per_key = Counter(k for k, status in answers if status == "stored")
    assert len(answers) == 4 * len(documents)
    assert per_key == dict.fromkeys((key(d) for d in documents), 1)
    expected_kwh = 2 * sum(record["kwh"] for record in day)
    batches, intervals, kwh = stored(postgres_url)
    assert (batches, intervals) == (len(documents), 2 * 1440)
    assert kwh == pytest.approx(expected_kwh)
    with psycopg.connect(postgres_url) as db:
        # what the batches say they added is what is there: no record counted twice
        row = db.execute("SELECT sum(intervals), sum(duplicate_records) FROM batches").fetchone()
    assert row == (2 * 1440, 5 * 240)


def test_a_batch_cut_off_by_sigkill_is_stored_once_when_sent_to_the_other(
    postgres: PostgresServer, postgres_url: str, token_file: Path
) -> None:
    """Receiver A is killed with SIGKILL in the middle of storing a batch (its transaction
    holds the batch key and part of the intervals); the sender posts it again to B: B
    stores it whole, and nothing of A's half is left."""
    document = batch(sequence=7, intervals=minutes(500))
    last = document["intervals"][-1]
    with (
        receiver_process(postgres_url, token_file) as a,
        receiver_process(postgres_url, token_file) as b,
        psycopg.connect(postgres_url) as blocker,
    ):
        # Hold the last interval's key in an open transaction, so A's insert waits on it.
        blocker.execute(
            "INSERT INTO batches (key, gateway, sequence, schema_version, factor_set,"
            " received_at, body_sha256) VALUES ('blocker:1', 'blocker', 1, 1, 'x', 'now', 'x')"
        )
        blocker.execute(
            "INSERT INTO intervals (batch_id, gateway, enterprise_id, region_code,"
            " industry_code, timezone, device, carrier, start_text, end_text, start_s, end_s,"
            " duration_s, local_date, quantity, unit, coverage, quality, record)"
            " SELECT id, %s, 'x', 'x', 'x', 'x', %s, %s, 'x', 'x', %s, %s, 60, 'x', 0, 'x', 1,"
            " 'x', '{}' FROM batches WHERE key = 'blocker:1'",
            (
                GATEWAY["id"],
                last["device"],
                last["carrier"],
                _epoch(last["start"]),
                _epoch(last["end"]),
            ),
        )
        outcome: list[object] = []

        def send_to_a() -> None:
            try:
                with httpx.Client(base_url=a.url, timeout=60) as http:
                    outcome.append(post(http, document).status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        sending = threading.Thread(target=send_to_a)
        sending.start()
        _wait_for_a_lock_wait(postgres_url)
        a.kill()
        sending.join(timeout=30)
        blocker.rollback()

        with httpx.Client(base_url=b.url, timeout=60) as http:
            answer = post(http, document)

    assert isinstance(outcome[0], httpx.HTTPError)
    assert (answer.status_code, answer.json()["status"], answer.json()["intervals"]) == (
        200,
        "stored",
        500,
    )
    assert stored(postgres_url) == (1, 500, pytest.approx(sum(r["kwh"] for r in minutes(500))))


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _wait_for_a_lock_wait(url: str) -> None:
    """Until some backend of this database waits on a lock: A is mid-batch."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.02)  # another process's progress: no clock of ours to move
    raise AssertionError("receiver A never reached the held interval")


def test_receivers_starting_at_once_migrate_the_schema_once(postgres_url: str) -> None:
    """Four processes open the same new database at the same moment: the advisory lock lets
    one create the schema, the others find it; each version is recorded once."""
    program = (
        "import sys; from receiver._backends import open_store; open_store(sys.argv[1]).close()"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", program, postgres_url], cwd=REPO,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    errors = [process.communicate(timeout=60)[1] for process in processes]

    assert [process.returncode for process in processes] == [0] * 4, errors
    with psycopg.connect(postgres_url) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_without_the_password_the_receiver_says_so_and_exits(
    postgres_url: str, token_file: Path, tmp_path: Path
) -> None:
    """No password file for the URL: the receiver exits at once, naming the database (the
    password never shown) and what libpq said, instead of serving a store it cannot reach."""
    empty = tmp_path / "pgpass"
    empty.write_text("")
    empty.chmod(0o600)
    run = subprocess.run(
        [sys.executable, "-m", "agent", "receiver", "--port", "0", "--db", postgres_url,
         "--token-file", str(token_file)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PGPASSFILE": str(empty)},
    )  # fmt: skip

    assert run.returncode == os.EX_CANTCREAT
    assert f"receiver: {postgres_url}: cannot reach the database" in run.stderr
    assert "password" in run.stderr
