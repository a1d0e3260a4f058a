"""bench/region_day.py: a tiny region's day runs end to end, and its check finds a loss.

The figures are not asserted (no wall-clock asserts in tests); what is, is that
the bench's "nothing lost or doubled" check would say so if something were.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bench.region_batches import message_of, records
from bench.region_day import Sent, check
from receiver._postgres import PostgresStore
from receiver._request import validate_batch
from tests.fixtures.mosquitto import need_mosquitto
from tests.fixtures.postgres import MISSING, bindir, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_day_goes_through_the_broker_into_two_receivers_once() -> None:
    """3 gateways x 2 devices x 2 hours: every interval stored once, the time and the CPU
    of each process reported."""
    if bindir() is None:
        unavailable(MISSING)
    need_mosquitto()
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "region_day.py"), "--gateways", "3",
         "--devices", "2", "--hours", "2", "--no-profile"],
        capture_output=True, text=True, timeout=220, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("3 gateways x 2 devices x 2 h: 6 batches, 720 intervals,")
    assert lines[0].endswith("each stored once (per gateway count and kWh checked)")
    assert lines[1].startswith("first publish to last commit: ")
    cpu = next(line for line in lines if line.startswith("CPU seconds during the run: "))
    for process in ("senders", "receiver 1", "receiver 2", "broker", "postgres"):
        assert f"{process} " in cpu


def test_the_check_finds_an_interval_lost_or_doubled_and_energy_changed(
    postgres_url: str,
) -> None:
    """One gateway's hour stored as the receiver stores it: the check passes for what was
    sent, and fails naming the gateway for one interval more or less or one Wh off."""
    texts, wh = records(7, 3, 0)
    body = gzip.decompress(message_of(7, 0, texts).payload)
    store = PostgresStore(postgres_url)
    try:
        store.put("gw00007:1", validate_batch(body), None, hashlib.sha256(body).hexdigest(),
                  body=body)  # fmt: skip
    finally:
        store.close()
    sent = Sent({"gw00007": 180}, {"gw00007": wh}, 1, 0.0, 0.0, 0.0)

    assert check(postgres_url, [sent]) == (1, 180, wh / 1000)
    for wrong in (
        Sent({"gw00007": 181}, {"gw00007": wh}, 1, 0.0, 0.0, 0.0),
        Sent({"gw00007": 179}, {"gw00007": wh}, 1, 0.0, 0.0, 0.0),
        Sent({"gw00007": 180}, {"gw00007": wh + 1}, 1, 0.0, 0.0, 0.0),
    ):
        with pytest.raises(RuntimeError, match="gw00007"):
            check(postgres_url, [wrong])
    with pytest.raises(RuntimeError, match="1 batches stored"):
        check(postgres_url, [sent, Sent({}, {}, 1, 0.0, 0.0, 0.0)])
