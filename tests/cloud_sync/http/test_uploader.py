"""The uploader against the reference receiver and against answers we make up."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from buffer import AsyncStore
from cloud_sync.http.uploader import REJECT_LIMIT, Uploader
from domain.batch import Batch
from domain.records import Commit, IntervalRow
from receiver import Receiver
from tests.fixtures.batches import GATEWAY, series
from tests.fixtures.uplink import TOKEN, fill, uploader

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = AsyncStore(tmp_path / "buffer.db")
    yield s
    s.close()


def mock(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.AsyncClient:
    """A client whose platform answers from `answers` in turn (the last one repeats)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def body(request: httpx.Request) -> dict:
    return json.loads(gzip.decompress(request.content))


async def test_backlog_reaches_the_receiver_exactly_once(store: AsyncStore, tmp_path: Path) -> None:
    """25 intervals in batches of 10 arrive whole, and the buffer's backlog is empty after."""
    sent = await fill(store, 25)
    with Receiver(tmp_path / "central.db", TOKEN) as receiver:
        up = uploader(store, receiver.url + "/api/v1/batches")
        assert await up.deliver() == 25
        await up.close()
        stored = httpx.get(
            receiver.url + "/api/v1/intervals", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert [i["start"] for i in stored.json()["intervals"]] == [r["start"] for r in sent]
    assert (await store.backlog())["intervals"] == 0
    assert up.status.batches_sent == 3


async def test_a_batch_resent_after_a_crash_is_a_duplicate_not_a_double(
    store: AsyncStore, tmp_path: Path
) -> None:
    """Sent but not acknowledged (the agent died): the resend has the same key and counts once."""
    await fill(store, 5)
    with Receiver(tmp_path / "central.db", TOKEN) as receiver:
        url = receiver.url + "/api/v1/batches"
        up = uploader(store, url)
        header = {"schema_version": 1, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
        batch = await store.outbox("sync").pending_batch(10, header)
        assert batch is not None
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip",
                   "Idempotency-Key": f"{GATEWAY['id']}:{batch.seq}"}  # fmt: skip
        first = httpx.post(url, content=up.payload(batch), headers=headers)
        assert first.json()["status"] == "stored"
        assert await up.deliver() == 5  # the "restarted" agent re-sends the pending batch
        await up.close()
        assert up.status.last_result == "duplicate"
        stored = httpx.get(
            receiver.url + "/api/v1/intervals", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert len(stored.json()["intervals"]) == 5


async def test_busy_answers_are_retried_with_the_same_key_and_bytes(store: AsyncStore) -> None:
    """503 with Retry-After, then 200: the retry carries the same Idempotency-Key and body."""
    await fill(store, 3)
    seen: list[httpx.Request] = []
    client = mock(
        [
            httpx.Response(503, headers={"Retry-After": "0"}),
            httpx.Response(200, json={"status": "stored"}),
        ],
        seen,
    )
    up = uploader(store, "https://central.invalid/api/v1/batches", client)
    assert await up.deliver() == 3
    await up.close()
    assert len(seen) == 2
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]
    assert seen[0].content == seen[1].content
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_platform_that_stays_down_keeps_the_batch_pending(store: AsyncStore) -> None:
    """Repeated 500s: nothing is marked sent, and the next run resends the same batch."""
    await fill(store, 3)
    seen: list[httpx.Request] = []
    up = uploader(store, "https://central.invalid/b", mock([httpx.Response(500)], seen), attempts=2)
    assert await up.deliver() == 0
    assert len(seen) == 2
    assert (await store.backlog())["intervals"] == 3
    await up.close()
    seen2: list[httpx.Request] = []
    up2 = uploader(
        store,
        "https://central.invalid/b",
        mock([httpx.Response(200, json={"status": "stored"})], seen2),
    )
    assert await up2.deliver() == 3
    await up2.close()
    assert seen2[0].headers["Idempotency-Key"] == seen[0].headers["Idempotency-Key"]


async def test_a_rejected_record_is_found_quarantined_alone_and_the_rest_flows(
    store: AsyncStore,
) -> None:
    """400 for a batch with one bad record: halving finds it, only it is set aside, with
    an event; every other record arrives once."""
    records = await fill(store, 15)
    bad = records[7]["start"]
    delivered: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts = [i["start"] for i in body(request)["intervals"]]
        if bad in starts:
            return httpx.Response(400, json={"reason": "factor missing"})
        delivered.extend(starts)
        return httpx.Response(200, json={"status": "stored"})

    up = uploader(
        store,
        "https://central.invalid/b",
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    await up.deliver()  # finds the bad record and quarantines it; this run ends there
    await up.deliver()  # the rest, and the event about the rejection
    await up.close()
    assert sorted(delivered) == sorted(r["start"] for r in records if r["start"] != bad)
    backlog = await store.backlog()
    assert (backlog["intervals"], backlog["events"], backlog["oldest"]) == (0, 0, None)
    (reason,) = store.store.db.execute(
        "SELECT reason FROM batches WHERE status = 'rejected'"
    ).fetchone()
    assert "factor missing" in reason


async def test_unauthorized_keeps_everything_and_says_why(store: AsyncStore, caplog) -> None:
    """401: no data is dropped, the status names the token, and the token is not in the logs."""
    await fill(store, 3)
    seen: list[httpx.Request] = []
    up = uploader(
        store,
        "https://central.invalid/b",
        mock([httpx.Response(401, json={"reason": "bad token"})], seen),
    )
    with caplog.at_level(logging.DEBUG):
        assert await up.deliver() == 0
    await up.close()
    assert len(seen) == 1  # not retried in a loop
    assert "check the sync token" in up.status.last_result
    assert (await store.backlog())["intervals"] == 3
    assert TOKEN not in caplog.text
    events = await store.run(
        lambda: [r["message"] for r in store.store.db.query("SELECT * FROM events")]
    )
    assert len(events) == 1 and "refuses batches: HTTP 401" in events[0]
    assert TOKEN not in events[0]


async def test_after_a_refusal_the_uploader_backs_off_and_keeps_one_event(
    store: AsyncStore,
) -> None:
    """401 again and again: one sync_refused event, and no request while backing off."""
    await fill(store, 3)
    seen: list[httpx.Request] = []
    up = uploader(
        store,
        "https://central.invalid/b",
        mock([httpx.Response(403, json={"reason": "revoked"})] * 5, seen),
    )
    assert await up.deliver() == 0
    assert await up.deliver() == 0  # inside the pause: nothing sent
    assert len(seen) == 1
    up.hold_until = 0.0  # the pause is over
    assert await up.deliver() == 0
    assert len(seen) == 2
    await up.close()
    kinds = await store.run(
        lambda: [r["kind"] for r in store.store.db.query("SELECT kind FROM events")]
    )
    assert kinds == ["sync_refused"]
    assert (await store.backlog())["intervals"] == 3


async def test_too_large_splits_the_batch_until_it_fits(store: AsyncStore) -> None:
    """413 for more than 4 records: the batch is halved until accepted; nothing is lost."""
    await fill(store, 10)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(body(request)["intervals"]) > 4:
            return httpx.Response(413, json={"reason": "too large"})
        return httpx.Response(200, json={"status": "stored"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    up = uploader(store, "https://central.invalid/b", client)
    assert await up.deliver() == 10
    await up.close()
    delivered = [
        i["start"] for r in seen if len(body(r)["intervals"]) <= 4 for i in body(r)["intervals"]
    ]
    assert len(delivered) == len(set(delivered)) == 10


async def test_a_receiver_that_is_down_then_up_gets_everything(
    store: AsyncStore, tmp_path: Path
) -> None:
    """Connection refused: nothing acknowledged; when the receiver is back, all arrives once."""
    await fill(store, 4)
    receiver = Receiver(tmp_path / "central.db", TOKEN)
    receiver.start()
    url = receiver.url + "/api/v1/batches"
    receiver.stop()
    up = uploader(store, url, attempts=1)
    assert await up.deliver() == 0
    receiver.start()
    try:
        assert await up.deliver() == 4
    finally:
        await up.close()
        receiver.stop()


def answers(*replies: httpx.Response) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    return mock(list(replies), seen), seen


async def test_the_bytes_of_a_batch_do_not_depend_on_the_hour_or_the_config(
    store: AsyncStore,
) -> None:
    """Same batch, same bytes: no gzip timestamp, and the header fixed when it was assigned."""
    await fill(store, 2)
    up = uploader(store, "https://central.invalid/b")
    header = {"schema_version": 1, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
    batch = await store.outbox("sync").pending_batch(10, header)
    assert batch is not None
    body = up.payload(batch)
    assert body[4:8] == b"\0\0\0\0"  # gzip MTIME
    again = await store.outbox("sync").pending_batch(10, header | {"factor_set": "cn-mee-2023"})
    assert again is not None and up.payload(again) == body
    await up.close()


async def test_a_wrong_url_keeps_every_batch_pending(store: AsyncStore) -> None:
    """404 (or a redirect) is the gateway's config, not the batch: nothing is quarantined."""
    await fill(store, 30)
    for reply in (httpx.Response(404), httpx.Response(301, headers={"Location": "/x"})):
        client, seen = answers(reply)
        up = uploader(store, "https://central.invalid/wrong", client)
        assert await up.deliver() == 0
        await up.close()
        assert len(seen) == 1
        assert "check sync.url" in up.status.last_result
    assert (await store.backlog())["intervals"] == 30
    assert store.store.last_batch() is None


async def test_a_platform_rejecting_everything_stops_quarantining_and_holds(
    store: AsyncStore,
) -> None:
    """422 for every batch: a few single records are set aside, then the backlog is held."""
    await fill(store, 30)
    client, _ = answers(httpx.Response(422, json={"reason": "schema"}))
    up = uploader(store, "https://central.invalid/b", client)
    for _ in range(5):
        assert await up.deliver() == 0
    await up.close()
    rejected = store.store.db.execute(
        "SELECT count(*) FROM batches WHERE status = 'rejected'"
    ).fetchone()[0]
    assert rejected == REJECT_LIMIT
    assert "holding the backlog" in up.status.last_result
    assert (await store.backlog())["intervals"] >= 30 - REJECT_LIMIT  # the rest is held
    assert store.store.db.execute("SELECT count(*) FROM intervals").fetchone()[0] == 30


async def test_a_rejected_batch_of_rejection_notices_raises_no_new_notice(
    store: AsyncStore,
) -> None:
    """The chain ends: a batch holding only batch_rejected events gets no event of its own."""
    await fill(store, 1)
    client, _ = answers(httpx.Response(400, json={"reason": "no"}))
    up = uploader(store, "https://central.invalid/b", client)
    await up.deliver()  # the interval batch: rejected, one notice
    await up.deliver()  # the notice batch: rejected, no notice
    await up.close()
    assert (await store.backlog())["events"] == 0
    kinds = [k for (k,) in store.store.db.execute("SELECT kind FROM events").fetchall()]
    assert kinds == ["batch_rejected"]  # the first batch's notice, and no notice of it
    statuses = store.store.db.execute("SELECT status FROM batches ORDER BY seq").fetchall()
    assert [s for (s,) in statuses] == ["rejected", "rejected"]


async def test_a_key_taken_by_another_batch_is_resent_under_a_new_key(store: AsyncStore) -> None:
    """409: the platform has a different batch under this key; the records go under a new one."""
    await fill(store, 2)
    client, seen = answers(httpx.Response(409, json={"reason": "taken"}), httpx.Response(200))
    up = uploader(store, "https://central.invalid/b", client)
    assert await up.deliver() == 2
    await up.close()
    first, second = (r.headers["Idempotency-Key"] for r in seen)
    assert first != second
    assert body(seen[1])["sequence"] == int(second.rsplit(":", 1)[1])


async def test_retry_after_is_waited_for(store: AsyncStore) -> None:
    """429 with Retry-After: 1: the retry comes no sooner than a second later."""
    await fill(store, 1)
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"status": "stored"})

    up = uploader(
        store,
        "https://central.invalid/b",
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    assert await up.deliver() == 1
    await up.close()
    assert times[1] - times[0] >= 0.95


async def test_the_key_follows_the_batch_not_a_renamed_gateway(store: AsyncStore) -> None:
    """A batch assigned before gateway.id changed is resent under its own key and body."""
    await fill(store, 2)
    first, seen = answers(httpx.Response(503, headers={"Retry-After": "0"}))
    up = uploader(store, "https://central.invalid/b", first, attempts=1)
    await up.deliver()
    await up.close()
    renamed = {**GATEWAY, "id": "cd-plant07-gw2"}
    second, seen2 = answers(httpx.Response(200, json={"status": "stored"}))
    up2 = Uploader(store, url="https://central.invalid/b", token=TOKEN, gateway=renamed,
                   factor_set="cn-mee-2022", client=second)  # fmt: skip
    assert await up2.deliver() == 2
    await up2.close()
    assert seen2[0].headers["Idempotency-Key"] == seen[0].headers["Idempotency-Key"]
    assert body(seen2[0])["gateway"]["id"] == GATEWAY["id"]


async def test_a_platform_answering_409_forever_is_not_flooded(store: AsyncStore) -> None:
    """409 twice for the same records: renumbered once, then held with a reason."""
    await fill(store, 2)
    client, seen = answers(httpx.Response(409, json={"reason": "taken"}))
    up = uploader(store, "https://central.invalid/b", client)
    assert await up.deliver() == 0
    await up.close()
    assert len(seen) == 2
    assert "again under a new key" in up.status.last_result
    assert (await store.backlog())["intervals"] == 2


@given(attempt=st.integers(min_value=1, max_value=40), hint=st.none() | st.floats(0, 10_000))
def test_waits_follow_the_servers_hint_or_back_off_exponentially_with_a_cap(
    attempt: int, hint: float | None
) -> None:
    """Retry-After is obeyed (up to 5 min); without one, 1, 2, 4 ... s plus jitter, at most 60 s."""
    from types import SimpleNamespace

    from cloud_sync.http.uploader import _server_hint_or_backoff
    from domain.errors import SyncRetryable

    error = SyncRetryable("HTTP 503 busy", hint)
    outcome = SimpleNamespace(exception=lambda: error)
    state = SimpleNamespace(attempt_number=attempt, outcome=outcome)
    wait = _server_hint_or_backoff(state)  # type: ignore[arg-type]
    if hint is not None:
        assert wait == min(hint, 300.0)
    else:
        assert min(2.0 ** (attempt - 1), 60.0) <= wait <= 60.0


async def test_a_batch_leaves_out_the_statistics_kept_for_other_destinations(
    store: AsyncStore,
) -> None:
    """Records carrying interval statistics (for an HJ 212 uplink) go out as batch schema
    version 1 has them: without `stats`, and the batch validates; the rest byte for byte."""
    plain = series("main_incomer", "2026-11-26T08:00:00+08:00", 1, 2)
    with_stats = [r | {"stats": {"power_kw": [1.5, 1.0, 2.0, 6]}} for r in plain]
    rows = [
        IntervalRow("main_incomer", datetime.fromisoformat(r["start"]).timestamp(), 60.0, r)
        for r in with_stats
    ]
    await store.commit(Commit(intervals=rows))
    up = uploader(store, "https://central.invalid/b")
    header = {"schema_version": 1, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
    batch = await store.outbox("sync").pending_batch(10, header)
    assert batch is not None and all('"stats"' in text for text in batch.intervals)
    sent = json.loads(gzip.decompress(up.payload(batch)))
    assert sent["intervals"] == json.loads(json.dumps(plain))
    Batch.model_validate(sent)
    await up.close()
