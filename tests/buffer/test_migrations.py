"""Schema versions: an old buffer is migrated and drained, a newer one refused untouched.

The old buffer is a real file written by the release before versions were
read (tests/buffer/data/make_buffer_v1.py says how it was made and what it
holds), not one this code imagines.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from buffer import SCHEMA_VERSION, AsyncStore, Store, schema
from cloud_sync.http.uploader import Uploader
from domain.errors import BufferTooNew, ConfigError
from receiver import Receiver  # the one place this file names the receiver's home
from tests.fixtures.batches import GATEWAY

pytestmark = pytest.mark.timeout(60)
V1 = Path(__file__).with_name("data") / "buffer-v1.db"
TOKEN = "migration-token"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A copy of the version 1 buffer, to open and change."""
    path = tmp_path / "buffer.db"
    shutil.copy(V1, path)
    return path


def query(path: Path, sql: str) -> list[tuple]:
    """Read a buffer with plain sqlite3, read-only, as someone examining it would."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def layout(path: Path) -> list[tuple]:
    return sorted(query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master"))


def newer_file(path: Path) -> bytes:
    """A buffer as a future release might leave it: the next version, one table this build does
    not know; checkpointed, so all of it is in the one file. Returns its bytes."""
    Store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE outbox_v3 (id INTEGER PRIMARY KEY, what TEXT)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path.read_bytes()


# --- the old file as the old release left it --------------------------------------------


def test_the_old_file_is_what_its_script_says() -> None:
    """The fixture holds acked, rejected and pending batches under one cursor (version 1)."""
    assert query(V1, "PRAGMA user_version") == [(1,)]
    statuses = [s for (s,) in query(V1, "SELECT status FROM batches ORDER BY seq")]
    assert statuses == ["acked", "acked", "rejected", "pending"]
    assert query(V1, "SELECT events_acked, intervals_acked FROM sync_state") == [(1, 18)]
    counts = [query(V1, f"SELECT count(*) FROM {t}")[0][0] for t in ("intervals", "events")]
    assert counts == [60, 4]


# --- opening: new, old, newer --------------------------------------------------------------


def test_a_new_file_gets_the_current_schema_at_once(tmp_path: Path) -> None:
    """An empty path becomes a buffer of the current version with the "sync" cursor at 0."""
    Store(tmp_path / "b.db").close()
    assert query(tmp_path / "b.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    cursors = query(
        tmp_path / "b.db", "SELECT name, events_acked, intervals_acked FROM destinations"
    )
    assert cursors == [("sync", 0, 0)]


def test_an_old_file_is_migrated_in_place_under_destination_sync(old: Path) -> None:
    """Version 1 -> 2: the one cursor becomes "sync"'s, every batch (pending, acked,
    rejected) is "sync"'s with its number, and counters, records and samples are kept;
    -> 3: the records keep their factors inline (no factor number)."""
    before = {
        table: query(old, f"SELECT * FROM {table} ORDER BY 1")
        for table in ("intervals", "events", "samples", "counters")
    }
    before["intervals"] = [(*row, None) for row in before["intervals"]]
    batches = query(old, "SELECT seq, status, header, events_lo, intervals_hi FROM batches")
    next_batch = query(old, "SELECT next_batch FROM sync_state")

    Store(old).close()

    assert query(old, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(old, "SELECT name, events_acked, intervals_acked FROM destinations") == [
        ("sync", 1, 18)
    ]
    assert query(old, "SELECT seq, status, header, events_lo, intervals_hi FROM batches") == batches
    assert {d for (d,) in query(old, "SELECT destination FROM batches")} == {"sync"}
    assert query(old, "SELECT next_batch FROM sync_state") == next_batch
    for table, rows in before.items():
        assert query(old, f"SELECT * FROM {table} ORDER BY 1") == rows, table


def test_a_migrated_file_has_exactly_the_schema_of_a_new_one(old: Path, tmp_path: Path) -> None:
    """Same tables, columns, indexes, statement for statement: no half-migrated leftovers."""
    Store(old).close()
    Store(tmp_path / "new.db").close()
    assert layout(old) == layout(tmp_path / "new.db")


async def test_a_migrated_buffer_drains_every_unsent_record_exactly_once(
    old: Path, tmp_path: Path
) -> None:
    """Through the real uploader to the reference receiver: the pending batch first, under
    its original key; every interval and event not acknowledged arrives once; nothing
    acknowledged or quarantined is sent again; the counter state survived."""
    intervals_acked, events_acked = query(
        old, "SELECT intervals_acked, events_acked FROM sync_state"
    )[0]
    expected_intervals = query(
        old, f"SELECT device, start FROM intervals WHERE seq > {intervals_acked} ORDER BY 1, 2"
    )
    expected_events = query(old, f"SELECT seq FROM events WHERE seq > {events_acked} ORDER BY 1")
    [(pending,)] = query(old, "SELECT seq FROM batches WHERE status = 'pending'")
    finished = {s for (s,) in query(old, "SELECT seq FROM batches WHERE status != 'pending'")}
    counters = query(old, "SELECT key, state FROM counters")
    central = tmp_path / "central.db"

    with Receiver(central, TOKEN) as receiver:
        answers = await drain(old, receiver.url + "/api/v1/batches")

    assert answers[0] == (f"{GATEWAY['id']}:{pending}", "stored")
    assert {answer for _, answer in answers} == {"stored"}
    sent = [int(key.rsplit(":", 1)[1]) for key, _ in answers]
    assert len(sent) == len(set(sent)) and not finished & set(sent)
    assert received_intervals(central) == expected_intervals
    assert query(central, "SELECT event_id FROM events ORDER BY 1") == expected_events
    assert query(central, "SELECT sum(duplicate_records) FROM batches") == [(0,)]
    assert query(old, "SELECT key, state FROM counters") == counters
    assert query(old, "SELECT count(*) FROM samples") == [(30,)]
    assert query(old, "SELECT status, reason FROM batches WHERE status = 'rejected'") == [
        ("rejected", "HTTP 422: factor missing")
    ]


async def test_a_pending_batch_the_platform_already_had_is_answered_duplicate(
    old: Path, tmp_path: Path
) -> None:
    """The old agent sent the pending batch and died before the answer: after the migration
    it goes again under the same key and bytes, and the platform counts it once."""
    with Receiver(tmp_path / "central.db", TOKEN) as receiver:
        url = receiver.url + "/api/v1/batches"
        store = AsyncStore(old)
        up = Uploader(store, url=url, token=TOKEN, gateway=GATEWAY, factor_set="cn-mee-2022")
        batch = await up.outbox.pending_batch(10_000, {"unused": "its header is fixed"})
        assert batch is not None
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                url,
                content=up.payload(batch),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip",
                         "Idempotency-Key": f"{GATEWAY['id']}:{batch.seq}"},
            )  # fmt: skip
        assert reply.json()["status"] == "stored"
        await up.close()
        store.close()  # the old agent "dies" here
        answers = await drain(old, url)
    assert answers[0] == (f"{GATEWAY['id']}:{batch.seq}", "duplicate")
    assert {answer for _, answer in answers[1:]} == {"stored"}
    assert len(received_intervals(tmp_path / "central.db")) == 42
    assert query(tmp_path / "central.db", "SELECT sum(duplicate_records) FROM batches") == [(0,)]


async def drain(buffer: Path, url: str) -> list[tuple[str, str]]:
    """Open `buffer` with this release and sync all of it; the (key, answer) of every POST."""
    answers: list[tuple[str, str]] = []

    async def note(response: httpx.Response) -> None:
        await response.aread()
        answers.append((response.request.headers["Idempotency-Key"], response.json()["status"]))

    store = AsyncStore(buffer)
    client = httpx.AsyncClient(event_hooks={"response": [note]})
    up = Uploader(store, url=url, token=TOKEN, gateway=GATEWAY, factor_set="cn-mee-2022",
                  max_batch=10, client=client)  # fmt: skip
    try:
        while await up.deliver():
            pass
        backlog = await store.backlog()
    finally:
        await up.close()
        store.close()
    assert (backlog["intervals"], backlog["events"]) == (0, 0), up.status
    return answers


def received_intervals(central: Path) -> list[tuple]:
    rows = query(central, "SELECT device, start_s FROM intervals ORDER BY 1, 2")
    assert len(rows) == len(set(rows))
    return rows


# --- a newer file ----------------------------------------------------------------------------


@pytest.mark.parametrize("readonly", [False, True], ids=["agent", "status"])
def test_a_newer_file_is_refused_and_left_byte_for_byte(tmp_path: Path, readonly: bool) -> None:
    """Version 3 under a build that knows 2: a clear refusal naming the file and both
    versions and what to do; the file is neither moved aside nor changed."""
    path = tmp_path / "buffer.db"
    data = newer_file(path)
    files = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BufferTooNew) as refused:
        Store(path, readonly=readonly)
    message = str(refused.value)
    newer, known = f"version {SCHEMA_VERSION + 1}", f"(up to {SCHEMA_VERSION})"
    assert str(path) in message and newer in message and known in message
    assert "Upgrade edge-agent" in message and "move the file aside" in message
    assert isinstance(refused.value, ConfigError)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no .corrupt-*, no -wal


def test_a_newer_version_still_in_the_wal_is_refused_too(tmp_path: Path) -> None:
    """A newer release that crashed before a checkpoint: its version is only in the WAL,
    and SQLite's reading of it is trusted over the file's header."""
    path = tmp_path / "buffer.db"
    Store(path).close()
    keep = sqlite3.connect(path, isolation_level=None)  # held open: no checkpoint at close
    keep.execute("PRAGMA wal_autocheckpoint = 0")
    keep.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert schema.file_version(path) == SCHEMA_VERSION  # the header alone says the current one
    try:
        with pytest.raises(BufferTooNew):
            Store(path)
        assert keep.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        keep.close()


@pytest.mark.timeout(60)
def test_the_agent_refuses_a_newer_buffer_as_a_config_problem_exit_78(tmp_path: Path) -> None:
    """`edge-agent run` names buffer.path and exits 78, so systemd does not restart it."""
    path = tmp_path / "buffer.db"
    data = newer_file(path)
    config = tmp_path / "agent.yaml"
    config.write_text(
        "gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: '510100',"
        " industry_code: C3011}\n"
        f"buffer: {{path: {path}}}\n"
        "sync: {url: 'http://127.0.0.1:9/api/v1/batches'}\n"
        "devices: []\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "agent", "run", "-c", str(config)],
        capture_output=True, text=True, timeout=50, cwd=tmp_path, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 78, output
    assert "buffer.path" in output and "newer than this edge-agent knows" in output
    assert path.read_bytes() == data


def config_on(buffer: Path) -> str:
    """An agent.yaml with no device on the buffer file `buffer`, for `status`."""
    return (
        "gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: '510100',"
        " industry_code: C3011}\n"
        f"buffer: {{path: {buffer}}}\n"
        "sync: {url: 'https://central.example/api/v1/batches'}\n"
        "devices: []\n"
    )


def test_status_reads_an_old_file_without_migrating_it(old: Path, capsys) -> None:
    """`edge-agent status` on a version 1 buffer shows its backlog and leaves it at 1."""
    from agent.cli import main

    config = old.with_name("agent.yaml")
    config.write_text(config_on(old))
    assert main(["status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "backlog: 42 intervals, 3 events, oldest" in out
    migrated = f"version 1, migrated to {SCHEMA_VERSION} when the agent next starts"
    assert f"buffer schema: {migrated}" in out
    assert main(["status", "-c", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["buffer_version"] == 1
    assert report["backlog"]["destinations"]["sync"]["intervals"] == 42
    assert query(old, "PRAGMA user_version") == [(1,)]


def test_status_refuses_a_newer_file_clearly(tmp_path: Path, capsys) -> None:
    """`edge-agent status` on a newer buffer says why it cannot read it, exit 1."""
    from agent.cli import main

    path = tmp_path / "buffer.db"
    newer_file(path)
    config = tmp_path / "agent.yaml"
    config.write_text(config_on(path))
    assert main(["status", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert "cannot read the buffer" in out and "newer than this edge-agent knows" in out


def test_a_database_that_is_no_buffer_is_refused_not_moved(tmp_path: Path) -> None:
    """Some other program's SQLite file at buffer.path (no version, tables of its own)."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE recipes (name TEXT)")
    db.close()
    data = path.read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="not an edge-agent buffer"):
        Store(path)
    assert path.read_bytes() == data and not list(tmp_path.glob("*.corrupt-*"))


# --- a migration that does not finish ------------------------------------------------------


def test_a_failing_migration_step_leaves_version_1_and_every_row(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error at the very end of the step (all of its work done): nothing of it stays,
    the file is the old release's file, and the next open migrates it."""
    before = dump(old)
    real = schema.STEPS[1]

    def failing(conn: sqlite3.Connection) -> None:
        real(conn)
        raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setitem(schema.STEPS, 1, failing)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        Store(old)
    assert query(old, "PRAGMA user_version") == [(1,)]
    assert dump(old) == before
    monkeypatch.setitem(schema.STEPS, 1, real)
    Store(old).close()
    assert query(old, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_process_killed_mid_migration_leaves_version_1_and_every_row(old: Path) -> None:
    """kill -9 inside the step: the file opens at version 1 with all of its data."""
    before = dump(old)
    script = (
        "import os, signal, sys\n"
        "from buffer import Store, schema\n"
        "real = schema.STEPS[1]\n"
        "def killed(conn):\n"
        "    real(conn)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "schema.STEPS[1] = killed\n"
        "Store(sys.argv[1])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(old)],
        capture_output=True, text=True, timeout=30, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == -9, run.stderr
    assert dump(old) == before
    assert query(old, "PRAGMA user_version") == [(1,)]
