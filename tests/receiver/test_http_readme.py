"""The README's curl lines for the receiver, run as they are against a real receiver."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from receiver import Receiver
from tests.fixtures.batches import batch, event, key, series

pytestmark = pytest.mark.timeout(60)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
TOKEN = "s3cret-token"
SHOWN = "http://127.0.0.1:8080"


def curl_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    return [
        line
        for block in blocks
        for line in block.splitlines()
        if line.startswith(f"curl -s {SHOWN}/")
    ]


def path_of(line: str) -> str:
    return line.split()[2].removeprefix(SHOWN)


def test_the_readme_shows_a_curl_for_every_endpoint() -> None:
    assert sorted(path_of(line) for line in curl_lines()) == [
        "/api/v1/batches",
        "/api/v1/events",
        "/api/v1/intervals",
        "/api/v1/openapi.json",
        "/api/v1/schema",
        "/api/v1/summary",
        "/healthz",
    ]


def test_the_readme_curl_lines_work_as_shown(tmp_path: Path) -> None:
    """In a directory with the token in `token` and a batch in `batch.json.gz`, each line,
    pointed at a real receiver's port, answers what the README says it does."""
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed (Debian: apt-get install curl)")
        pytest.skip("curl is not installed")
    document = batch(
        sequence=1,
        intervals=series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 4),
        events=[event(1, "2026-11-26T09:00:00+08:00", kind="device_offline", severity="critical")],
    )
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "batch.json.gz").write_bytes(gzip.compress(json.dumps(document).encode()))
    answers: dict[str, Any] = {}
    with Receiver(tmp_path / "central.db", TOKEN) as receiver:
        for line in curl_lines():
            run = subprocess.run(
                ["sh", "-c", line.replace(SHOWN, receiver.url)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert run.returncode == 0, run.stderr
            answers[path_of(line)] = json.loads(run.stdout)

    assert f"Idempotency-Key: {key(document)}" in curl_lines()[0]
    assert answers["/api/v1/batches"]["status"] == "stored"
    assert len(answers["/api/v1/intervals"]["intervals"]) == 4
    assert [e["kind"] for e in answers["/api/v1/events"]["events"]] == ["device_offline"]
    assert answers["/api/v1/summary"]["groups"][0]["kwh"] == pytest.approx(4.0)
    assert answers["/api/v1/schema"]["$id"].endswith("/batch/v1.json")
    assert "/api/v1/events" in answers["/api/v1/openapi.json"]["paths"]
    assert answers["/healthz"] == {"status": "ok"}
