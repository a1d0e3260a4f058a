"""GET /api/v1/events: what the gateways reported, read back over real HTTP with filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from receiver import Receiver
from tests.fixtures.batches import CHONGQING, GATEWAY, batch, event, gzipped, key

pytestmark = pytest.mark.timeout(30)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RAISED = event(1, "2026-11-26T08:05:00+08:00")
CLEARED = event(
    2,
    "2026-11-26T08:20:00+08:00",
    kind="alarm_cleared",
    severity="info",
    message="site-demand-high cleared",
)
OFFLINE = event(
    3,
    "2026-11-26T01:00:00Z",  # 09:00 in Chengdu
    device="press_line_2",
    kind="device_offline",
    severity="critical",
    message="press_line_2: no answer for 3 polls",
)
FULL = event(
    4, "2026-11-26T09:30:00+08:00", device=None, kind="buffer_full", message="buffer at 95%"
)
ELSEWHERE = event(1, "2026-11-26T08:10:00+08:00", kind="device_online", severity="info")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One receiver holding the events above, for every test here: they only read."""
    with (
        Receiver(tmp_path_factory.mktemp("events") / "central.db", token=TOKEN) as receiver,
        httpx.Client(base_url=receiver.url, timeout=10) as http,
    ):
        for document in (
            batch(sequence=1, events=[RAISED, CLEARED]),
            batch(sequence=2, intervals=[], events=[OFFLINE, FULL, RAISED]),  # RAISED again
            batch(sequence=1, gateway=CHONGQING, events=[ELSEWHERE]),
        ):
            headers = AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(document)}
            answer = http.post("/api/v1/batches", content=gzipped(document), headers=headers)
            assert answer.json()["status"] == "stored"
        yield http


def events(client: httpx.Client, **params: str) -> dict[str, Any]:
    answer = client.get("/api/v1/events", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def ids(answer: dict[str, Any]) -> list[tuple[str, int]]:
    return [(record["gateway"], record["id"]) for record in answer["events"]]


def test_events_come_back_oldest_first_as_sent_each_once(client: httpx.Client) -> None:
    """Every event stored once (one sent twice is still one), oldest first, as the gateway
    sent it with its gateway in front."""
    answer = events(client)

    assert ids(answer) == [
        (GATEWAY["id"], 1),
        (CHONGQING["id"], 1),
        (GATEWAY["id"], 2),
        (GATEWAY["id"], 3),
        (GATEWAY["id"], 4),
    ]
    assert answer["truncated"] is False
    assert answer["events"][3] == {"gateway": GATEWAY["id"], **OFFLINE}
    assert answer["events"][4]["device"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"gateway": CHONGQING["id"]}, [(CHONGQING["id"], 1)]),
        ({"device": "press_line_2"}, [(GATEWAY["id"], 3)]),
        ({"kind": "alarm_cleared"}, [(GATEWAY["id"], 2)]),
        ({"severity": "info"}, [(CHONGQING["id"], 1), (GATEWAY["id"], 2)]),
        # from inclusive, to exclusive, both on ts, in any offset
        (
            {"from": "2026-11-26T08:20:00+08:00", "to": "2026-11-26T01:30:00Z"},
            [(GATEWAY["id"], 2), (GATEWAY["id"], 3)],
        ),
        (
            {"gateway": GATEWAY["id"], "severity": "warning", "kind": "alarm_raised"},
            [(GATEWAY["id"], 1)],
        ),
        ({"kind": "no_such_kind"}, []),
    ],
)
def test_events_filter(
    client: httpx.Client, params: dict[str, str], expected: list[tuple[str, int]]
) -> None:
    """Each filter narrows the answer, and they combine."""
    assert ids(events(client, **params)) == expected


def test_limit_cuts_the_answer_and_says_so(client: httpx.Client) -> None:
    """Like /api/v1/intervals: at most `limit` records, and `truncated` when more matched."""
    assert (ids(events(client, limit="2")), events(client, limit="2")["truncated"]) == (
        [(GATEWAY["id"], 1), (CHONGQING["id"], 1)],
        True,
    )
    assert events(client, limit="5")["truncated"] is False


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"from": "2026-11-26T08:00:00"}, "from must be RFC 3339 with an offset"),
        ({"to": "yesterday"}, "to must be RFC 3339 with an offset"),
        ({"limit": "0"}, "limit must be a whole number"),
        ({"limit": "100001"}, "limit must be a whole number"),
        ({"sevrity": "info"}, "unknown query parameter 'sevrity'"),
    ],
)
def test_bad_event_filters_are_400_with_the_reason(
    client: httpx.Client, params: dict[str, str], reason: str
) -> None:
    """A filter that is misspelt or malformed is refused, never ignored."""
    answer = client.get("/api/v1/events", params=params, headers=AUTH)

    assert answer.status_code == 400
    assert answer.json()["reason"].startswith(reason)


def test_a_filter_given_twice_is_400(client: httpx.Client) -> None:
    answer = client.get("/api/v1/events?kind=a&kind=b", headers=AUTH)

    assert (answer.status_code, answer.json()["reason"]) == (
        400,
        "query parameter 'kind' given twice",
    )


def test_events_need_the_token(client: httpx.Client) -> None:
    """Events are the plants' data: 401 without the token, or with a wrong one."""
    wrong = {"Authorization": "Bearer not-it"}
    assert [client.get("/api/v1/events", headers=h).status_code for h in ({}, wrong)] == [401, 401]
