"""The reference receiver, spoken to over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver import Receiver
from tests.fixtures.batches import (
    CHONGQING,
    GATEWAY,
    batch,
    event,
    gzipped,
    interval,
    key,
    series,
)

pytestmark = pytest.mark.timeout(30)

TOKEN = "s3cret-token"
REPO = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "central.db", token=TOKEN) as running:
        yield running


@pytest.fixture
def client(receiver: Receiver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=10) as http:
        yield http


def post(
    client: httpx.Client,
    document: dict[str, Any],
    *,
    token: str | None = TOKEN,
    idempotency_key: str | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """POST a batch the way the agent does: gzip, bearer token, Idempotency-Key."""
    headers = {"Content-Encoding": "gzip", "Idempotency-Key": idempotency_key or key(document)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(
        "/api/v1/batches",
        content=gzipped(document) if content is None else content,
        headers=headers,
    )


def stored_intervals(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/intervals", params=params, headers=AUTH)
    assert answer.status_code == 200
    return answer.json()["intervals"]


def test_reading_plant_data_needs_the_token_too(client: httpx.Client) -> None:
    """Stored intervals and summaries are the plants' data: 401 without the token."""
    assert client.get("/api/v1/intervals").status_code == 401
    summary = client.get("/api/v1/summary", params={"by": "region", "period": "day"})
    assert summary.status_code == 401


def test_each_interval_says_which_gateway_sent_it(client: httpx.Client) -> None:
    """A query across gateways can tell the records apart."""
    post(client, batch())
    post(client, batch(gateway=CHONGQING))
    assert {i["gateway"] for i in stored_intervals(client)} == {GATEWAY["id"], CHONGQING["id"]}


# Storing and de-duplicating.


def test_a_batch_is_stored_once_and_its_key_is_then_a_duplicate(client: httpx.Client) -> None:
    """The same batch posted twice is stored the first time and answered duplicate after."""
    document = batch(intervals=series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 4))

    first, second = post(client, document), post(client, document)

    assert (
        first.status_code,
        first.json()["status"],
        first.json()["intervals"],
    ) == (200, "stored", 4)
    assert (200, {"status": "duplicate", "key": key(document)}) == (
        second.status_code,
        second.json(),
    )
    assert len(stored_intervals(client)) == 4


def test_uncompressed_and_chunked_bodies_are_accepted(client: httpx.Client) -> None:
    """A body sent without gzip, or with chunked transfer encoding, is stored too."""
    plain = json.dumps(batch(sequence=1)).encode()
    chunked = gzipped(batch(sequence=2, intervals=[interval(start="2026-11-26T09:00:00+08:00")]))
    headers = {"Authorization": f"Bearer {TOKEN}"}

    answers = [
        client.post(
            "/api/v1/batches", content=plain, headers=headers | {"Idempotency-Key": key(batch())}
        ),
        client.post(
            "/api/v1/batches",
            content=iter([chunked[:10], chunked[10:]]),
            headers=headers | {"Idempotency-Key": "cd-plant07-gw1:2", "Content-Encoding": "gzip"},
        ),
    ]

    assert [answer.json()["status"] for answer in answers] == ["stored", "stored"]


def test_records_are_deduplicated_across_batch_keys(client: httpx.Client) -> None:
    """A record that arrives again in a batch with another key is not stored twice."""
    a, b, c = series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 3)
    post(client, batch(sequence=1, intervals=[a, b], events=[event(7)]))

    answer = post(client, batch(sequence=2, intervals=[b, c], events=[event(7), event(8)]))

    expected = {"intervals": 1, "events": 1, "samples": 0, "duplicate_records": 2}
    assert expected == {name: answer.json()[name] for name in expected}
    assert [a["start"], b["start"], c["start"]] == [r["start"] for r in stored_intervals(client)]


def test_the_same_instant_written_with_another_offset_is_the_same_interval(
    client: httpx.Client,
) -> None:
    """Record keys compare instants, so 08:00+08:00 and 00:00Z are one interval."""
    post(client, batch(sequence=1, intervals=[interval(start="2026-11-26T08:00:00+08:00")]))

    answer = post(
        client, batch(sequence=2, intervals=[interval(start="2026-11-26T00:00:00+00:00")])
    )

    assert (answer.json()["intervals"], answer.json()["duplicate_records"]) == (0, 1)


def test_identical_batches_posted_at_once_are_stored_once(receiver: Receiver) -> None:
    """Eight copies of a batch posted at the same moment: one stored, seven duplicates."""
    document = batch(intervals=series("main_incomer", "2026-11-26T00:00:00+08:00", 1, 600))
    body = gzipped(document)
    start = threading.Barrier(8)
    statuses: list[str] = []

    def send() -> None:
        with httpx.Client(base_url=receiver.url, timeout=10) as http:
            start.wait()
            statuses.append(post(http, document, content=body).json()["status"])

    senders = [threading.Thread(target=send) for _ in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()

    assert sorted(statuses) == ["duplicate"] * 7 + ["stored"]
    with httpx.Client(base_url=receiver.url) as http:
        assert len(stored_intervals(http)) == 600


# Refusals.


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("Bearer wrong", "wrong bearer token"),
        (f"Basic {TOKEN}", "missing bearer token"),
    ],
)
def test_a_batch_without_the_right_token_is_refused(
    client: httpx.Client, authorization: str | None, reason: str
) -> None:
    """Without the right bearer token the answer is 401 and nothing is stored."""
    headers = {"Content-Encoding": "gzip", "Idempotency-Key": key(batch())}
    if authorization is not None:
        headers["Authorization"] = authorization

    answer = client.post("/api/v1/batches", content=gzipped(batch()), headers=headers)

    assert (401, {"status": "rejected", "reason": reason}) == (answer.status_code, answer.json())
    assert stored_intervals(client) == []


def test_without_a_configured_token_any_sender_is_accepted(tmp_path: Path) -> None:
    """A receiver started with token=None stores batches that carry no Authorization."""
    with (
        Receiver(tmp_path / "open.db", token=None) as open_receiver,
        httpx.Client(base_url=open_receiver.url) as http,
    ):
        assert post(http, batch(), token=None).json()["status"] == "stored"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("co2_kg", "lots", "Input should be a valid number"),
        ("co2_kg", float("inf"), "Input should be a finite number"),
        ("coverage", 1.5, "Input should be less than or equal to 1"),
        ("quality", "great", "Input should be 'good', 'estimated' or 'partial'"),
        ("start", "2026-11-26T08:00:00", "Input should have timezone info"),
        # a field schema version 1 does not declare: a newer sender's, or a typo
        ("co2kg", 1.0, "Extra inputs are not permitted"),
    ],
)
def test_a_schema_violation_is_422_with_the_path_of_the_field(
    client: httpx.Client, field: str, value: object, message: str
) -> None:
    """A broken field is named by its path, and nothing of the batch is stored."""
    records = series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 5)
    records[3][field] = value
    # json.dumps writes inf as Infinity, which is not JSON; 1e999 is JSON that overflows.
    content = gzip.compress(
        json.dumps(batch(intervals=records)).replace("Infinity", "1e999").encode()
    )

    answer = post(client, batch(), content=content)

    assert answer.status_code == 422
    assert [f"intervals[3].{field}"] == [error["path"] for error in answer.json()["errors"]]
    assert answer.json()["errors"][0]["message"].startswith(message)
    assert stored_intervals(client) == []


@pytest.mark.parametrize(
    ("idempotency_key", "reason"),
    [
        ("cd-plant07-gw1:2", "does not match the body"),
        ("other-gw:1", "does not match the body"),
        ("cd-plant07-gw1", "Idempotency-Key must be '<gateway id>:<sequence>'"),
    ],
)
def test_an_idempotency_key_that_does_not_name_the_batch_is_400(
    client: httpx.Client, idempotency_key: str, reason: str
) -> None:
    """The key must be the body's '<gateway.id>:<sequence>', or the batch is refused."""
    answer = post(client, batch(sequence=1), idempotency_key=idempotency_key)

    assert answer.status_code == 400
    assert reason in answer.json()["reason"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x1f\x8b not really gzip", "body is not valid gzip"),
        (gzip.compress(b'{"schema_version": 1,'), "body is not valid JSON"),
        (gzip.compress(b"{}")[:-6], "gzip body is truncated"),
    ],
    ids=["not-gzip", "not-json", "truncated"],  # gzip's header holds the time: ids must not
)
def test_a_body_that_is_not_gzip_json_is_400(
    client: httpx.Client, content: bytes, reason: str
) -> None:
    """Invalid gzip or invalid JSON is answered 400 with the reason."""
    answer = post(client, batch(), content=content)

    assert answer.status_code == 400
    assert answer.json()["reason"].startswith(reason)


@pytest.fixture
def small_receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "small.db", token=TOKEN, max_body=64 * 1024) as running:
        yield running


def test_a_body_over_the_limit_is_413(small_receiver: Receiver) -> None:
    """A body larger than max_body is refused with 413 without being read into memory."""
    content = os.urandom(256 * 1024)

    with httpx.Client(base_url=small_receiver.url) as http:
        answer = post(http, batch(), content=content)
        after = http.get("/healthz", headers=AUTH)

    assert (answer.status_code, answer.json()["status"]) == (413, "rejected")
    assert after.status_code == 200


def test_a_gzip_bomb_is_413(small_receiver: Receiver) -> None:
    """A small gzip body that inflates past max_body is refused with 413."""
    bomb = gzip.compress(b" " * (64 * 2**20))

    with httpx.Client(base_url=small_receiver.url) as http:
        answer = post(http, batch(), content=bomb)

    assert len(bomb) < 64 * 1024
    assert answer.status_code == 413
    assert "once decompressed" in answer.json()["reason"]


def test_fail_rate_one_answers_every_post_503_with_retry_after(tmp_path: Path) -> None:
    """With fail_rate=1.0 every POST is 503 with Retry-After: 1, and nothing is stored."""
    with (
        Receiver(tmp_path / "failing.db", TOKEN, fail_rate=1.0) as failing,
        httpx.Client(base_url=failing.url) as http,
    ):
        answer = post(http, batch())
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
        assert stored_intervals(http) == []


def test_latency_delays_every_answer(tmp_path: Path) -> None:
    """latency=0.3 makes an answer take at least 0.3 s."""
    with (
        Receiver(tmp_path / "slow.db", TOKEN, latency=0.3) as slow,
        httpx.Client(base_url=slow.url) as http,
    ):
        began = time.monotonic()
        http.get("/healthz", headers=AUTH)
        assert time.monotonic() - began >= 0.3


# Reading back.


def test_intervals_filter_by_gateway_device_and_start(client: httpx.Client) -> None:
    """from is inclusive, to exclusive, both on start; other devices are left out."""
    post(
        client,
        batch(
            sequence=1,
            intervals=series("press_line_2", "2026-11-26T08:00:00+08:00", 15, 8)
            + series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 8),
        ),
    )

    found = stored_intervals(
        client,
        gateway="cd-plant07-gw1",
        device="press_line_2",
        **{"from": "2026-11-26T08:30:00+08:00", "to": "2026-11-26T01:30:00Z"},
    )

    assert [(record["device"], record["start"]) for record in found] == [
        ("press_line_2", "2026-11-26T08:30:00+08:00"),
        ("press_line_2", "2026-11-26T08:45:00+08:00"),
        ("press_line_2", "2026-11-26T09:00:00+08:00"),
        ("press_line_2", "2026-11-26T09:15:00+08:00"),
    ]


def test_intervals_come_back_as_received_with_optional_fields(client: httpx.Client) -> None:
    """A record is kept as sent (an optional field where it was, nothing added), and limit
    bounds the answer."""
    records = series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 3)
    records[0]["demand_kw"] = 812.5
    post(client, batch(intervals=records))

    answer = client.get("/api/v1/intervals", params={"limit": "2"}, headers=AUTH).json()

    with_gateway = [{"gateway": GATEWAY["id"], **r} for r in records[:2]]
    assert (with_gateway, True) == (answer["intervals"], answer["truncated"])


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-11-26T08:00:00"},
        {"from": "2026-11-26T08:00:00 08:00"},
        {"limit": "0"},
        {"devcie": "x"},
    ],
)
def test_bad_interval_filters_are_400(client: httpx.Client, params: dict[str, str]) -> None:
    """A filter that is unknown or not RFC 3339 with an offset is refused, not ignored."""
    assert client.get("/api/v1/intervals", params=params, headers=AUTH).status_code == 400


def summary(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/summary", params=params, headers=AUTH)
    assert answer.status_code == 200
    return answer.json()["groups"]


def test_summary_counts_each_device_once_across_interval_lengths(client: httpx.Client) -> None:
    """A device reporting 1-minute and 15-minute intervals is counted from the 1-minute ones."""
    one_minute = series("main_incomer", "2026-11-26T08:00:00+08:00", 1, 15, kwh=1.0)
    quarter = [interval("main_incomer", "2026-11-26T08:00:00+08:00", 15, kwh=15.0)]
    only_quarters = series("press_line_2", "2026-11-26T08:00:00+08:00", 15, 2, kwh=2.5)
    post(client, batch(sequence=1, intervals=one_minute + quarter))
    post(client, batch(sequence=2, intervals=only_quarters))

    [group] = summary(client, by="gateway", period="day")

    assert (group["key"], group["period"]) == ("cd-plant07-gw1", "2026-11-26")
    assert pytest.approx((group["kwh"], group["tce_kg"], group["co2_kg"])) == (20.0, 2.0, 10.0)


def at(clock: str, day: str = "2026-11-26") -> str:
    """A Chengdu time: at("08:07") is 2026-11-26T08:07:00+08:00."""
    return f"{day}T{clock}:00+08:00"


def day_totals(client: httpx.Client) -> tuple[float, float, float]:
    """kWh, tce and CO2 of the one gateway and day stored."""
    [group] = summary(client, by="gateway", period="day")
    return group["kwh"], group["tce_kg"], group["co2_kg"]


def counted(kwh: float) -> Any:
    """What day_totals should answer for `kwh`: tce is a tenth of it, CO2 half (batches.py)."""
    return pytest.approx((kwh, kwh / 10, kwh / 2))


# The three restart tests: 1 kWh a minute, and the agent restarted at 08:07,
# with another emissions.intervals in two of them. Here a length added at the
# restart reports from 08:07 on, and a length removed loses its open interval.


def test_summary_with_unchanged_interval_lengths(client: httpx.Client) -> None:
    """[1m, 15m] from 08:01 to 09:00: the quarters add nothing beyond their minutes."""
    minutes = series("main_incomer", at("08:01"), 1, 59)
    quarters = [
        interval(start=at("08:00"), kwh=14.0),
        *series("main_incomer", at("08:15"), 15, 3, 15.0),
    ]
    post(client, batch(intervals=minutes + quarters))

    expected = 59 * 1.0 + (14.0 - 14 * 1.0) + 3 * (15.0 - 15 * 1.0)  # 59

    assert day_totals(client) == counted(expected)


def test_summary_when_a_restart_adds_1_minute_intervals(client: httpx.Client) -> None:
    """[15m] from 08:01, [1m, 15m] from 08:07: the first quarter adds its minutes before 08:07."""
    minutes = series("main_incomer", at("08:07"), 1, 53)
    quarters = [
        interval(start=at("08:00"), kwh=14.0),
        *series("main_incomer", at("08:15"), 15, 3, 15.0),
    ]
    post(client, batch(sequence=1, intervals=minutes + quarters))

    expected = 53 * 1.0 + (14.0 - 8 * 1.0) + 3 * (15.0 - 15 * 1.0)  # 59

    assert day_totals(client) == counted(expected)


def test_summary_when_a_restart_drops_1_minute_intervals(client: httpx.Client) -> None:
    """[1m, 15m] from 08:00, [15m] from 08:07 until 08:50: the quarters count beyond 08:00-08:07."""
    # The open minute 08:07 went with its length; the quarter 08:45 never closed.
    minutes = series("main_incomer", at("08:00"), 1, 7)
    quarters = series("main_incomer", at("08:00"), 15, 3, 15.0)
    post(client, batch(sequence=1, intervals=minutes))
    post(client, batch(sequence=2, intervals=quarters))

    expected = 7 * 1.0 + (15.0 - 7 * 1.0) + 15.0 + 15.0  # 45

    assert day_totals(client) == counted(expected)


def test_summary_takes_nothing_off_twice_with_three_lengths(client: httpx.Client) -> None:
    """An hour gives only what its quarters and the minutes outside them do not."""
    hour = interval(start=at("08:00"), minutes=60, kwh=60.0)
    quarters = series("main_incomer", at("08:00"), 15, 2, 15.0)  # 08:00 and 08:15 only
    minutes = series("main_incomer", at("08:00"), 1, 5) + series("main_incomer", at("08:30"), 1, 5)
    post(client, batch(intervals=[hour, *quarters, *minutes]))

    # 08:00-08:05 lies in the first quarter and 08:30-08:35 in no quarter, only the hour
    expected = 10 * 1.0 + (15.0 - 5 * 1.0) + 15.0 + (60.0 - (15.0 + 15.0 + 5 * 1.0))  # 60

    assert day_totals(client) == counted(expected)


def test_summary_counts_an_interval_with_nothing_inside_it_whole(client: httpx.Client) -> None:
    """A day with no finer intervals of its own device and carrier counts whole."""
    day = interval(start=at("00:00"), minutes=24 * 60, kwh=240.0)
    other_device = interval("press_line_2", at("08:00"), 1, kwh=1.0)
    other_carrier = interval(start=at("08:00"), kwh=5.0, carrier="steam")
    post(client, batch(intervals=[day, other_device, other_carrier]))

    assert day_totals(client) == counted(240.0 + 1.0 + 5.0)


def test_summary_never_counts_an_interval_below_zero(client: httpx.Client) -> None:
    """A quarter holding less than its minutes adds nothing and takes nothing off."""
    quarter = interval(start=at("08:00"), kwh=12.0, coverage=0.8, quality="partial")
    post(client, batch(intervals=[quarter, *series("main_incomer", at("08:00"), 1, 15)]))

    assert day_totals(client) == counted(15 * 1.0)


def test_summary_counts_intervals_that_do_not_nest_beside_each_other(
    client: httpx.Client,
) -> None:
    """A quarter that is not clock-aligned overlaps another: each counts, less what nests in it."""
    aligned = interval(start=at("08:00"), kwh=15.0)
    shifted = interval(start=at("08:07"), kwh=15.0)
    minute = interval(start=at("08:10"), minutes=1, kwh=1.0)  # inside both; nests in the later
    post(client, batch(intervals=[aligned, shifted, minute]))

    expected = 15.0 + (15.0 - 1.0) + 1.0  # 30

    assert day_totals(client) == counted(expected)


def test_summary_compares_nested_lengths_with_earlier_periods(client: httpx.Client) -> None:
    """previous and year_ago count each device's energy once too, by day and by month."""
    records = []
    for day in ("2026-11-26", "2026-11-25", "2025-11-26"):
        records += [
            interval(start=at("08:00", day), kwh=15.0),
            *series("main_incomer", at("08:07", day), 1, 8),
        ]
    records.append(interval(start=at("10:00", "2026-11-25"), minutes=60, kwh=60.0))
    post(client, batch(intervals=records))

    [by_day] = summary(client, by="gateway", period="day", date="2026-11-26")
    [by_month] = summary(client, by="gateway", period="month", date="2026-11-26")

    each_day = 8 * 1.0 + (15.0 - 8 * 1.0)  # 15
    assert (by_day["kwh"], by_day["previous"]["kwh"], by_day["year_ago"]["kwh"]) == (
        pytest.approx(each_day),
        pytest.approx(each_day + 60.0),
        pytest.approx(each_day),
    )
    assert (by_month["kwh"], by_month["previous"], by_month["year_ago"]["kwh"]) == (
        pytest.approx(2 * each_day + 60.0),
        None,
        pytest.approx(each_day),
    )


def test_summary_compares_with_the_previous_period_and_a_year_ago(client: httpx.Client) -> None:
    """Each group carries the day before and the same day a year earlier, null where not stored."""
    post(
        client,
        batch(
            sequence=1,
            intervals=[
                interval(start="2026-11-26T10:00:00+08:00", kwh=20.0),
                interval(start="2026-11-25T10:00:00+08:00", kwh=7.0),
                interval(start="2025-11-26T10:00:00+08:00", kwh=3.0),
            ],
        ),
    )
    post(client, batch(sequence=1, gateway=CHONGQING, intervals=[interval(kwh=4.0)]))

    groups = summary(client, by="region", period="day", date="2026-11-26")

    assert groups == [
        {
            "key": "500000",
            "period": "2026-11-26",
            "kwh": 4.0,
            "tce_kg": 0.4,
            "co2_kg": 2.0,
            "previous": None,
            "year_ago": None,
        },
        {
            "key": "510100",
            "period": "2026-11-26",
            "kwh": 20.0,
            "tce_kg": 2.0,
            "co2_kg": 10.0,
            "previous": {"period": "2026-11-25", "kwh": 7.0, "tce_kg": 0.7, "co2_kg": 3.5},
            "year_ago": {"period": "2025-11-26", "kwh": 3.0, "tce_kg": 0.3, "co2_kg": 1.5},
        },
    ]


def test_summary_without_a_date_reports_every_period(client: httpx.Client) -> None:
    """Months are listed in order, each with the month before where one is stored."""
    post(
        client,
        batch(
            intervals=[
                interval(start="2026-10-31T23:00:00+08:00", kwh=1.0),
                interval(start="2026-11-01T00:00:00+08:00", kwh=2.0),
                interval(start="2026-11-30T23:45:00+08:00", kwh=4.0),
            ]
        ),
    )

    groups = summary(client, by="industry", period="month")

    assert [
        (g["key"], g["period"], g["kwh"], g["previous"] and g["previous"]["period"]) for g in groups
    ] == [("C3011", "2026-10", 1.0, None), ("C3011", "2026-11", 6.0, "2026-10")]


def test_summary_periods_are_the_gateways_local_days(client: httpx.Client) -> None:
    """23:30 UTC on the 25th is 07:30 on the 26th in Chengdu, so it counts for the 26th."""
    post(client, batch(intervals=[interval(start="2026-11-25T23:30:00+00:00")]))

    assert [g["period"] for g in summary(client, by="enterprise", period="day")] == ["2026-11-26"]


@pytest.mark.parametrize(
    "params",
    [
        {"by": "province", "period": "day"},
        {"by": "region"},
        {"by": "region", "period": "day", "date": "26/11/2026"},
    ],
)
def test_bad_summary_parameters_are_400(client: httpx.Client, params: dict[str, str]) -> None:
    """by and period are required and checked; date is YYYY-MM-DD."""
    assert client.get("/api/v1/summary", params=params, headers=AUTH).status_code == 400


def test_schema_and_health(client: httpx.Client) -> None:
    """The batch JSON Schema is published with its version; /healthz answers ok; both, like
    every GET, only with the token."""
    schema = client.get("/api/v1/schema", headers=AUTH).json()

    assert schema["$id"].endswith("/batch/v1.json")
    assert client.get("/healthz", headers=AUTH).json() == {"status": "ok"}
    assert [client.get(path).status_code for path in ("/api/v1/schema", "/healthz")] == [401, 401]


def test_unknown_paths_are_404_and_wrong_methods_405_in_json(client: httpx.Client) -> None:
    """Errors are JSON like every other answer, with Allow on a 405."""
    missing, wrong = client.get("/api/v2/batches"), client.get("/api/v1/batches")

    assert (missing.status_code, missing.json()["status"]) == (404, "rejected")
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    assert wrong.headers["Content-Type"] == "application/json"


def test_each_request_is_logged_once_without_the_token(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """One DEBUG line per request, and the bearer token appears in none of them."""
    with caplog.at_level(logging.DEBUG, logger="edge_agent.receiver"):
        post(client, batch())
        post(client, batch(), token="wrong-token")

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(lines) == 2
    assert '"POST /api/v1/batches" 401' in lines[1]
    assert TOKEN not in caplog.text


# Lifecycle.


def test_stop_closes_the_port_and_idle_connections(tmp_path: Path) -> None:
    """stop() returns promptly with a keep-alive connection open, and the port is closed after."""
    running = Receiver(tmp_path / "central.db", TOKEN)
    running.start()
    with httpx.Client(base_url=running.url) as http:
        assert http.get("/healthz", headers=AUTH).status_code == 200
        began = time.monotonic()
        running.stop()
        running.stop()

        assert time.monotonic() - began < 2
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", running.port), timeout=1).close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    """The CLI server prints where it listens, serves, and exits 0 on SIGTERM or SIGINT."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    program = (
        "import sys; from receiver import serve;"
        f" sys.exit(serve('127.0.0.1', 0, {str(tmp_path / 'central.db')!r}, {str(token_file)!r}))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", program], cwd=REPO, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        url = line.removeprefix("receiver listening on ")
        with httpx.Client(base_url=url) as http:
            assert post(http, batch()).json()["status"] == "stored"
        process.send_signal(signum)

        assert process.wait(timeout=10) == 0
    assert line.startswith("receiver listening on http://127.0.0.1:")


def test_a_known_key_with_a_different_body_is_409(client: httpx.Client) -> None:
    """Two different batches under one key: the second is refused, never called a duplicate."""
    assert post(client, batch()).json()["status"] == "stored"
    other = batch(intervals=[interval(kwh=99.0)])
    answer = post(client, other)
    assert answer.status_code == 409
    assert "different body" in answer.json()["reason"]
