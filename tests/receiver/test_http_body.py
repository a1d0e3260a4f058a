"""The body reader: a body over the limit, or a gzip bomb, is refused while it arrives.

Over real HTTP on 127.0.0.1 for the server's side (the answer comes while the
sender is still sending), and receiver._body fed by hypothesis for the
arithmetic of chunks, gzip members and limits.
"""

from __future__ import annotations

import asyncio
import gzip
import select
import socket
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver import Receiver
from receiver._body import read_body
from receiver._request import Refused
from tests.fixtures.batches import batch, key

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 2 * 2**20
GIB = 2**30


def gzip_of_zeros(size: int, block: int = 2**20) -> bytes:
    """A gzip member inflating to `size` zero bytes, built without compressing them all:
    each block is deflated with a full flush (RFC 1951 blocks that need no history), so one
    compressed block repeats; the trailer's CRC-32 and length are computed (RFC 1952)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = packer.compress(bytes(block)) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush()
    crc = 0
    for _ in range(size // block):
        crc = zlib.crc32(bytes(block), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size % 2**32)
    return header + segment * (size // block) + end + trailer


def test_the_bomb_is_real_gzip() -> None:
    """The builder's output is what gzip inflates to the zeros it claims (at 8 MiB)."""
    assert gzip.decompress(gzip_of_zeros(8 * 2**20)) == bytes(8 * 2**20)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """One gzip member of 1 GiB of zeros in about 1 MiB: deflate's ratio is at most ~1000:1."""
    return gzip_of_zeros(GIB)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "central.db", token=TOKEN, max_body=LIMIT) as running:
        yield running


def head(framing: str) -> bytes:
    return (
        "POST /api/v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nIdempotency-Key: {key(batch())}\r\n"
        f"Content-Encoding: gzip\r\n{framing}\r\n\r\n"
    ).encode()


def send_until_answered(
    receiver: Receiver, start: bytes, pieces: Iterator[bytes], wait: float = 0.0
) -> tuple[bytes, int]:
    """Send `start`, then `pieces` one by one, each time giving the server up to `wait`
    seconds to answer, until it does or stops reading; the answer and how many bytes of
    `pieces` had been sent by then."""
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as conn:
        conn.sendall(start)
        for piece in pieces:
            if select.select([conn], [], [], wait)[0]:
                break  # the answer, or the end of the connection
            try:
                conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        while not complete(answer):
            piece = conn.recv(65536)
            if not piece:
                break
            answer += piece
    return answer, sent


def complete(answer: bytes) -> bool:
    """Whether `answer` holds a whole HTTP answer: its head, and the body its length says."""
    head, found, body = answer.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    lengths = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")]
    return bool(found) and len(body) >= (lengths[0] if lengths else 0)


def test_a_1_gib_gzip_bomb_is_refused_after_a_few_kb(receiver: Receiver, bomb: bytes) -> None:
    """1 GiB of zeros in 1 MiB of gzip, sent 4 KiB at a time: 413 once what the first
    kilobytes inflate to passes the 2 MiB limit, long before the bomb is all sent, and the
    receiver's memory never holds more than a few times the limit."""
    assert len(bomb) < 2**20 + 2**16  # the whole bomb is under the limit on the wire
    framing = f"Content-Length: {len(bomb)}"
    pieces = (bomb[at : at + 4096] for at in range(0, len(bomb), 4096))
    tracemalloc.start()
    try:
        answer, sent = send_until_answered(receiver, head(framing), pieces, wait=0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.split(b" ")[1] == b"413"
    assert b"once decompressed" in answer
    assert sent < 64 * 1024  # a few KB of it: the rest was never needed
    assert peak < 4 * LIMIT


def test_a_1_gib_gzip_bomb_posted_whole_is_413(receiver: Receiver, bomb: bytes) -> None:
    """The same bomb posted by an HTTP client in one go, chunked: 413 with the reason, and
    the connection ends cleanly (the client reads the answer, not a reset)."""
    headers = AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(batch())}
    pieces = (bomb[at : at + 65536] for at in range(0, len(bomb), 65536))
    with httpx.Client(base_url=receiver.url, timeout=10) as http:
        answer = http.post("/api/v1/batches", content=pieces, headers=headers)
        assert (answer.status_code, answer.headers["Connection"]) == (413, "close")
        assert "once decompressed" in answer.json()["reason"]
        assert http.get("/api/v1/intervals", headers=AUTH).json()["intervals"] == []


def test_an_endless_chunked_body_is_413_once_past_the_limit(receiver: Receiver) -> None:
    """Chunks of 64 KiB that never end: 413 with Connection: close once they pass the limit,
    while the sender is still sending, and the rest is never read into memory."""
    chunk = b"10000\r\n" + bytes(0x10000) + b"\r\n"
    tracemalloc.start()
    try:
        answer, sent = send_until_answered(
            receiver, head("Transfer-Encoding: chunked"), iter([chunk] * 4096)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status, _, rest = answer.partition(b"\r\n")
    assert status.split(b" ")[1] == b"413"
    assert b"connection: close" in rest.lower()
    assert LIMIT < sent < 4096 * len(chunk) // 4  # past the limit, far from the end
    assert peak < 4 * LIMIT


# receiver._body on its own, fed by hypothesis.


async def _pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    at = 0
    for cut in sorted(cuts):
        yield data[at:cut]
        at = cut
    yield data[at:]


def read(data: bytes, cuts: list[int], limit: int, *, compressed: bool) -> bytes:
    cuts = [cut % (len(data) + 1) for cut in cuts]
    return asyncio.run(read_body(_pieces(data, cuts), None, limit, compressed=compressed))


@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_gzip_members_in_any_pieces_inflate_to_what_was_packed(
    members: list[bytes], cuts: list[int]
) -> None:
    """However the body is cut into pieces, the inflated body is the members joined."""
    packed = b"".join(gzip.compress(member) for member in members)
    whole = b"".join(members)

    assert read(packed, cuts, max(len(whole), len(packed), 1), compressed=True) == whole


@given(
    data=st.binary(min_size=1, max_size=5000),
    limit=st.integers(1, 5000),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
    compressed=st.booleans(),
)
def test_the_limit_holds_on_the_wire_and_once_inflated(
    data: bytes, limit: int, cuts: list[int], compressed: bool
) -> None:
    """A body is returned whole when both its sent and its inflated size are within the
    limit, and is 413 otherwise."""
    sent = gzip.compress(data) if compressed else data
    if max(len(sent), len(data)) <= limit:
        assert read(sent, cuts, limit, compressed=compressed) == data
    else:
        with pytest.raises(Refused) as refused:
            read(sent, cuts, limit, compressed=compressed)
        assert refused.value.status == 413


@given(garbage=st.binary(max_size=400), cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_garbage_said_to_be_gzip_is_400_or_what_gzip_makes_of_it(
    garbage: bytes, cuts: list[int]
) -> None:
    """Bytes that are not gzip: a 400 (or 413) with a reason, never another error, and where
    Python's gzip module reads them, the same bytes."""
    try:
        expected: bytes | None = gzip.decompress(garbage)
    except (OSError, EOFError, zlib.error):
        expected = None
    try:
        got: bytes | None = read(garbage, cuts, 10**6, compressed=True)
    except Refused as refused:
        assert refused.status in (400, 413)
        got = None
    if got is not None:
        assert got == expected
