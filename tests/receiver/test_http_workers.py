"""`edge-agent receiver` as a real process: --workers N, a graceful stop on a signal, and
the message when the receiver's extra is not installed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fixtures.batches import batch, gzipped, key, series
from tests.fixtures.pki import make_pki

pytestmark = pytest.mark.timeout(90)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from agent.cli import main; sys.exit(main())"


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # the command name, in parentheses, may hold spaces: the fields after it are fixed
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def workers_of(pid: int) -> set[int]:
    """The worker processes under `pid` (not multiprocessing's resource tracker)."""
    found = set()
    for child in children(pid):
        try:
            if b"spawn_main" in (Path("/proc") / str(child) / "cmdline").read_bytes():
                found.add(child)
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def receiver_process(tmp_path: Path, *options: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`edge-agent receiver` on a free port, and the URL it printed; killed if a test fails."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    command = [sys.executable, "-c", CLI, "receiver", "--port", "0", "--db"]
    command += [str(tmp_path / "central.db"), "--token-file", str(token_file), *options]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert re.match(r"receiver listening on https?://127\.0\.0\.1:", line), line
            yield process, line.removeprefix("receiver listening on ").split()[0]
        finally:
            left = children(process.pid)
            if process.poll() is None:
                process.kill()
                process.wait()
            for pid in left:  # a test that failed leaves nothing behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def post(http: httpx.Client, sequence: int) -> str:
    document = batch(
        sequence=sequence,
        intervals=series(f"meter_{sequence}", "2026-11-26T08:00:00+08:00", 15, 4),
    )
    headers = AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(document)}
    answer = http.post("/api/v1/batches", content=gzipped(document), headers=headers)
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


def test_two_workers_store_and_answer_then_stop_on_sigterm(tmp_path: Path) -> None:
    """--workers 2: two processes under the one started; batches posted at once from eight
    clients are each stored once and read back; SIGTERM ends it with 0 and no process left."""
    with receiver_process(tmp_path, "--workers", "2") as (process, url):
        workers: set[int] = set()
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:  # they start after the print
            workers = workers_of(process.pid)
            time.sleep(0.05)
        assert len(workers) == 2

        def send(sequences: range) -> list[str]:
            with httpx.Client(base_url=url, timeout=20) as http:
                return [post(http, sequence) for sequence in sequences]

        with ThreadPoolExecutor(8) as pool:
            firsts = pool.map(send, [range(1 + 5 * n, 6 + 5 * n) for n in range(8)])
            agains = pool.map(send, [range(1 + 5 * n, 6 + 5 * n) for n in range(8)])
            statuses = [s for part in firsts for s in part], [s for p in agains for s in p]

        with httpx.Client(base_url=url, timeout=20) as http:
            stored = http.get("/api/v1/intervals", headers=AUTH).json()["intervals"]
        assert statuses == (["stored"] * 40, ["duplicate"] * 40)
        assert len(stored) == 40 * 4
        assert len({(r["device"], r["start"]) for r in stored}) == 160

        started = children(process.pid)  # the workers and multiprocessing's resource tracker
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)  # the tracker ends on the end of its pipe, after its parent
        assert [pid for pid in started if alive(pid)] == []
        # each worker closed its store on the way out: SQLite's last close removes the WAL
        assert not (tmp_path / "central.db-wal").exists()


def test_a_worker_ends_with_its_supervisor_even_on_sigkill(tmp_path: Path) -> None:
    """kill -9 of the supervising process: its workers end too instead of serving on."""
    with receiver_process(tmp_path, "--workers", "2") as (process, url):
        workers: set[int] = set()
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = workers_of(process.pid)
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=20) as http:  # the workers are serving
            assert http.get("/healthz", headers=AUTH).status_code == 200
        process.kill()
        process.wait()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if alive(pid)] == []


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_signal_lets_the_request_in_flight_finish(tmp_path: Path, workers: str) -> None:
    """A batch being answered when SIGTERM comes (latency holds its answer 1 s) is stored
    and answered, and then the receiver exits 0."""
    with receiver_process(tmp_path, "--latency", "1", "--workers", workers) as (process, url):
        with httpx.Client(base_url=url, timeout=20) as http:
            assert http.get("/healthz", headers=AUTH).status_code == 200  # workers are up
            answers: list[str] = []
            sender = threading.Thread(target=lambda: answers.append(post(http, 1)))
            sender.start()
            # the batch has been received once the receiver holds its connection open
            # with nothing left to read: give it the head start of half the latency
            threading.Event().wait(0.5)
            process.send_signal(signal.SIGTERM)
            sender.join()
        assert answers == ["stored"]
        assert process.wait(timeout=30) == 0


def test_workers_serve_mutual_tls(tmp_path: Path) -> None:
    """--workers with --tls-cert and --tls-client-ca: a gateway with a certificate from the
    CA stores its batch over HTTPS; one without a certificate is turned away."""
    pki = make_pki(tmp_path)
    options = ["--workers", "2", "--tls-cert", str(pki.server_cert), "--tls-key"]
    options += [str(pki.server_key), "--tls-client-ca", str(pki.ca)]
    with receiver_process(tmp_path, *options) as (process, url):
        assert url.startswith("https://")
        gateway = ssl.create_default_context(cafile=pki.ca)
        gateway.load_cert_chain(pki.client_cert, pki.client_key)
        with httpx.Client(base_url=url, timeout=20, verify=gateway) as http:
            assert post(http, 1) == "stored"
        stranger = ssl.create_default_context(cafile=pki.ca)
        with (
            httpx.Client(base_url=url, timeout=20, verify=stranger) as http,
            pytest.raises(httpx.TransportError),
        ):
            http.get("/healthz", headers=AUTH)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_without_the_receiver_extra_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    """With FastAPI not importable, `edge-agent receiver` exits 69 and names the extra."""
    program = "import sys; sys.modules['fastapi'] = None; " + CLI
    done = subprocess.run(
        [sys.executable, "-c", program, "receiver", "--db", str(tmp_path / "c.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 69
    assert "pip install 'edge-agent[receiver]'" in done.stderr
    assert not (tmp_path / "c.db").exists()
